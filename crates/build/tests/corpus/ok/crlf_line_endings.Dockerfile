FROM alpine
RUN echo crlf
ENV A=1 \
    B=2
RUN <<EOF
echo body
EOF
CMD ["sh"]
