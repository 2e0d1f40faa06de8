FROM maven:3.9-eclipse-temurin-21 AS build
WORKDIR /build
COPY pom.xml .
RUN mvn -B dependency:go-offline
COPY src ./src
RUN mvn -B package -DskipTests \
 && mv target/*.jar app.jar

FROM eclipse-temurin:21-jre
LABEL maintainer="team@example.com"
COPY --from=build /build/app.jar /app.jar
ENTRYPOINT ["java", "-jar", "/app.jar"]
