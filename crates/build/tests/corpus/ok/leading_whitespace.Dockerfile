   FROM alpine
	RUN echo tab
  	  WORKDIR /app   
