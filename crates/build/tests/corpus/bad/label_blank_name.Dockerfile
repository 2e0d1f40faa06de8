FROM alpine
LABEL =value
