FROM alpine
VOLUME ["/data", "/var/lib/app data"]
VOLUME [ "/one" ]
