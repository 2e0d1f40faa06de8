FROM alpine
RUN <<-EOT
	echo tab indented
		echo two tabs
	EOT
RUN true
