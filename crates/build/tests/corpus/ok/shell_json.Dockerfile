FROM debian
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN curl -fsSL https://example.com | sh
SHELL ["/bin/sh", "-c"]
