# syntax=docker/dockerfile:1.7
# escape=\
# check=skip=JSONArgsRecommended;error=true

FROM alpine
CMD echo hi
