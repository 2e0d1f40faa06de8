FROM alpine
LABEL description="café ☕ 한국어"
RUN echo "héllo wörld"
ENV GREETING=안녕
