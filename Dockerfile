# dojo-webhooks: a static binary in a small non-root image.
# docker build -t dojo-webhooks .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/dojo-webhooks ./cmd/dojo-webhooks

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/dojo-webhooks /usr/local/bin/dojo-webhooks
USER nonroot:nonroot
# The embedded server's store, when NATS_URL is empty.
ENV DOJO_WEBHOOKS_DATA_DIR=/home/nonroot/data
# Reachable from outside the container (the binary's own default is loopback).
ENV DOJO_WEBHOOKS_HTTP_ADDR=:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["/usr/local/bin/dojo-webhooks", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/dojo-webhooks"]
CMD ["serve"]
