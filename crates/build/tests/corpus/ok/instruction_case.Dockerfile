from alpine
run echo lower
Run echo mixed
copy a /b
workdir /app
env K=v
cmd ["sh"]
