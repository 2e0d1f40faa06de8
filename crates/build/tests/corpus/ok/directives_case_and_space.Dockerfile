#SYNTAX = docker/dockerfile:1
#	  EsCaPe=`
# Check =skip=all  
FROM alpine
RUN echo `
  done
