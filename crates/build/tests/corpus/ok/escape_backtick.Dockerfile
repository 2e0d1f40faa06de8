# escape=`

FROM mcr.microsoft.com/windows/nanoserver:ltsc2022
COPY testfile.txt c:\
RUN dir c:\
RUN echo one `
    two `
    three
ENV PATH="C:\Program Files\app;${PATH}"
