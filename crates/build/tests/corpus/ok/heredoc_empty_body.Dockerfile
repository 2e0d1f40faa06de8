FROM alpine
RUN <<EOF
EOF
COPY <<-END /empty
	END
