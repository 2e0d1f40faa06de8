# unknowndirective=value
# syntax=value
FROM alpine
