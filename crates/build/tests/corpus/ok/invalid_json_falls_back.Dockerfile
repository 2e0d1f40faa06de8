FROM alpine
RUN ["c:\windows\system32\tasklist.exe"]
CMD [ "a", ]
ENTRYPOINT ['single', 'quotes']
RUN [not json
CMD ["a"] trailing
