FROM python:3.12-slim
RUN <<EOT
#!/usr/bin/env python
print("hello world")
EOT
