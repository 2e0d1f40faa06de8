FROM alpine
RUN ["sh", "-c", "cat <<EOF"]
COPY ["<<EOF", "/dst"]
