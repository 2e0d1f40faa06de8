    # indented comment
FROM alpine
  # another indented comment
RUN echo 'we are running some # of cool things'
RUN echo hello \
# comment
world
    RUN echo indented instruction
#no space comment
CMD ["sh"] # not a comment, part of the args
