# syntax=docker/dockerfile:1
FROM debian
RUN <<EOF
  mkdir -p foo/bar
  echo hello > foo/bar/greeting
EOF
RUN echo after
