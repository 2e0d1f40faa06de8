FROM nginx
EXPOSE 80 443/tcp 53/udp
EXPOSE ${PORT}
VOLUME /data /var/log
VOLUME /cache
