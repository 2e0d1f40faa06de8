# syntax=docker/dockerfile:1
FROM alpine
ARG FOO=bar
COPY <<-EOT /script.sh
	echo "hello ${FOO}"
	EOT
COPY --chmod=755 <<-"EOT" /script2.sh
	echo "hello ${FOO}"
EOT
ENTRYPOINT ash /script.sh
