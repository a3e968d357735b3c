# The image for builders that can pull golang:
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t dintero-facade .
# Offline, or without golang at hand, .ci/image builds the same image with
# the local Go toolchain. Both make the image's files with .ci/image's rootfs
# step (one set of build flags), and .ci/image builds the last stage below.
# deploy/image_test.go checks that the COPY lines bring every package the
# binary imports. The Go release the binary is built with is go.mod's
# toolchain line, which .ci/image's rootfs step builds with wherever it
# runs; the build stage starts FROM that release, so nothing is fetched
# (deploy's TestImageGoRelease checks the two agree). Raise both when
# govulncheck (see .ci/run), which scans the shipped binary, reports a
# standard-library finding fixed in a later release.
FROM golang:1.26.10-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY gen/ gen/
COPY internal/ internal/
COPY service/ service/
COPY upstream/ upstream/
COPY .ci/image .ci/image
ARG VERSION=dev
RUN VERSION="${VERSION}" .ci/image rootfs /rootfs

# scratch: no shell, no package manager. The rootfs holds the static binary,
# the CA bundle, and /etc/passwd and /etc/group naming the user 65532.
FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
# 9090: gRPC. 8080: JSON gateway, /healthz, /openapi.json. 8081: probes
# (--health-addr). 9102: /metrics (--metrics-addr). The last two are off
# unless their flags are set, as deploy/'s Deployment sets them.
EXPOSE 9090 8080 8081 9102
ENTRYPOINT ["/dintero-facade"]
