FROM alpine As Builder
RUN touch /x
FROM builder as final
FROM scratch AS Release.Stage_1
