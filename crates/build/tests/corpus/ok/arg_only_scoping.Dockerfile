ARG A=1
ARG B
FROM alpine
ARG A
FROM alpine AS second
ARG B=2
