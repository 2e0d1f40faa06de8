FROM alpine
VOLUME []
