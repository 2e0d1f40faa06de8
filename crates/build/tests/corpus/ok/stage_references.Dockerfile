FROM alpine AS base
RUN apk add --no-cache ca-certificates
FROM base AS dev
RUN apk add --no-cache git
FROM base AS prod
COPY --from=dev /usr/bin/git /usr/bin/git
COPY --from=0 /etc/ssl /etc/ssl
