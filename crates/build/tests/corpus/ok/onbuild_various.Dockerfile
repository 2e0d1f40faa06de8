FROM node:20 AS base
ONBUILD COPY package.json /app/
ONBUILD RUN npm install
ONBUILD ADD . /app/src
ONBUILD ENV NODE_ENV=production
ONBUILD run --mount=type=cache,target=/root/.npm npm ci
ONBUILD COPY --from=build /usr/bin/app /app
onbuild workdir /app
ONBUILD HEALTHCHECK CMD curl -f http://localhost/
