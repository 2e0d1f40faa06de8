FROM alpine
COPY <<EOF greeting.txt
hello world
EOF
COPY <<EOF1 <<EOF2 /etc/app/
one
EOF1
two
EOF2
