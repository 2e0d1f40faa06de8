FROM alpine
RUN echo hello \

    world

RUN echo a \
   	
    b
