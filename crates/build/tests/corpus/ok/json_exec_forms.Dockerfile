FROM alpine
RUN ["apk", "add", "--no-cache", "curl"]
CMD [ "curl", "-fsS", "http://localhost/" ]
ENTRYPOINT ["/bin/sh", "-c", "exec \"$0\" \"$@\""]
CMD []
