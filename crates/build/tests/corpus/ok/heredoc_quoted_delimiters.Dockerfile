FROM alpine
ARG FOO=bar
RUN <<"EOF"
echo "$FOO stays literal"
EOF
RUN <<'EOT'
echo '$HOME'
EOT
RUN <<E"O"F
partly quoted
EOF
