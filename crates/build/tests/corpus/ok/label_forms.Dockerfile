FROM alpine
LABEL org.opencontainers.image.title="My App" \
      org.opencontainers.image.version=1.0
LABEL "com.example.quoted key"="value"
LABEL legacy value here
LABEL description="This text illustrates \
that label-values can span multiple lines."
