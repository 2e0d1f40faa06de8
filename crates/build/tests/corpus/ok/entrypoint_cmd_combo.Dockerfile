FROM alpine
ENTRYPOINT ["top", "-b"]
CMD ["-c"]
ENTRYPOINT exec top -b
CMD echo "shell form with $HOME"
