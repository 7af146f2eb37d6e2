# A static teckenrun with the plans, run as a non-root user.
#   docker build -t teckenrun .
#   docker run --rm teckenrun plans/demo.yaml
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/teckenrun .

FROM gcr.io/distroless/static-debian12:nonroot
WORKDIR /app
COPY --from=build /out/teckenrun /usr/local/bin/teckenrun
COPY --from=build /src/plans /app/plans
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/teckenrun"]
CMD ["plans/demo.yaml"]
