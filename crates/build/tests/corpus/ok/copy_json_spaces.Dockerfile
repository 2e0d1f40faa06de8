FROM alpine
COPY ["file with spaces.txt", "other file", "/dst dir/"]
ADD ["https://example.com/a b.tar", "/tmp/"]
