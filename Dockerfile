# Build: docker build --build-arg VERSION=$(git describe --always) -t dintero-facade .
# The build stage pins the Go release; raise it when govulncheck (see
# .ci/run) reports a standard-library finding fixed in a later release.
FROM golang:1.26.10-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY gen/ gen/
COPY internal/ internal/
COPY service/ service/
COPY upstream/ upstream/
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/dintero-facade ./cmd/dintero-facade

# distroless/static has no shell and no package manager; :nonroot runs as
# uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/dintero-facade /dintero-facade
USER 65532:65532
# 9090: gRPC. 8080: JSON gateway, /healthz, /openapi.json.
EXPOSE 9090 8080
ENTRYPOINT ["/dintero-facade"]
