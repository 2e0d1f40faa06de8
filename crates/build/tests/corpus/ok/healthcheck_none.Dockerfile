FROM nginx
HEALTHCHECK NONE
healthcheck none
