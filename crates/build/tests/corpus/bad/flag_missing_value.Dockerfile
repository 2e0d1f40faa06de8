FROM alpine
RUN --network echo hi
