FROM alpine
FOO bar
RUN <<EOF
never closed
