FROM alpine
RUN --mount=type=cache,target=/var/cache/apk --network=none <<EOF
apk add --no-cache curl
EOF
