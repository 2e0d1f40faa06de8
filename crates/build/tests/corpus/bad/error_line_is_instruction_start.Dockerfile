FROM alpine
RUN echo a \
  b
COPY \
  only
