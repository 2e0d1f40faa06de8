FROM alpine
RUN --mount="type=secret,id=token,env=TOKEN" echo ok
COPY --chown='app user' a b
RUN --mount=type=bind,source=with\ space,target=/x ls /x
