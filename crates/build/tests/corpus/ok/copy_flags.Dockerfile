FROM alpine
COPY --chown=1000:1000 --chmod=0644 --link src/ /app/src/
COPY --link=false a b
COPY --parents --exclude=*.md --exclude=tmp/ ./docs/ /docs/
COPY --from=nginx:latest /etc/nginx/nginx.conf /nginx.conf
