FROM alpine AS s0
RUN echo 0
FROM alpine AS s1
RUN echo 1
FROM alpine AS s2
RUN echo 2
FROM alpine AS s3
RUN echo 3
FROM alpine AS s4
RUN echo 4
FROM alpine AS s5
RUN echo 5
FROM alpine AS s6
RUN echo 6
FROM alpine AS s7
RUN echo 7
