FROM alpine
FROM alpine latest
