FROM alpine
RUN 3<<EOF cat /dev/fd/3
from fd 3
EOF
