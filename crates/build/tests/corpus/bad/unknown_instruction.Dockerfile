FROM alpine
RUN true
FROBNICATE the thing
