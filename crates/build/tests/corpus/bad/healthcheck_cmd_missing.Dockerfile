FROM alpine
HEALTHCHECK --interval=1s CMD
