FROM alpine
ENV A=1 B="two words" C='single quoted'
ENV LEGACY some value with   spaces
ENV PATH=/opt/bin:$PATH
ENV ESCAPED=a\ b QUOTE=\"x\"
ENV EMPTY= ALSO_EMPTY=""
ENV MULTI=one \
    OTHER=two
