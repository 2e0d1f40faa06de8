FROM alpine
RUN echo "$(date)" > /d && echo ${HOME} && echo 'single $x' | tee /f; true
CMD exec "$@"
