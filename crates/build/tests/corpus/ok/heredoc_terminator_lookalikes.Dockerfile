FROM alpine
RUN <<EOF
 EOF
EOF 
	EOF
EOFX
EOF
RUN echo x<<notheredoc
