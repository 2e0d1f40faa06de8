FROM alpine
COPY "a b" /dst/
