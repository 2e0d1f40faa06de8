# escape=`
FROM alpine
ENV A=x`"y B="q`"r" C=back\slash
ARG D=`$NOT_EXPANDED
