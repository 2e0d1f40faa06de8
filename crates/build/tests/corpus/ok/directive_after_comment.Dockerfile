# About my dockerfile
# escape=`
FROM alpine
RUN echo a \
 b
