FROM alpine
HEALTHCHECK --timeout=10us CMD true
