FROM alpine
ADD https://example.com/file.tar.gz#sha256 /tmp/
RUN echo a#b # c
LABEL color=#ff0000
