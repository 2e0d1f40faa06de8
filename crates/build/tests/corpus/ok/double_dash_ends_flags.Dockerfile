FROM alpine
RUN -- --version
COPY --link -- --weird-name /dst
