ARG REGISTRY=docker.io
ARG TAG=latest
FROM ${REGISTRY}/library/alpine:${TAG} AS base
ENV APP_HOME=/app APP_USER=app
WORKDIR $APP_HOME
COPY --chown=${APP_USER} . ${APP_HOME}/
USER ${APP_USER:-nobody}
EXPOSE ${PORT:-8080}
