FROM alpine
SHELL ["c:\windows\system32\cmd.exe", "/S"]
