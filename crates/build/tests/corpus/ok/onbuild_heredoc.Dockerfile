FROM alpine
ONBUILD RUN <<EOF
echo triggered
EOF
ONBUILD COPY <<EOF /etc/motd
welcome
EOF
