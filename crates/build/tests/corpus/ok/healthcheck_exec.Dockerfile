FROM nginx
HEALTHCHECK CMD ["curl", "-f", "http://localhost/"]
HEALTHCHECK cmd wget -q -O- localhost
