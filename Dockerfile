# personaldatad: one static binary on scratch, run as a numeric non-root user,
# with a read-only root filesystem. Nothing in the image is writable but the
# /data volume (the embedded store, its master key file and the first
# operator's token, when no MongoDB URI is given) and /tmp when a tmpfs is
# mounted there.
#
#   docker build --build-arg VERSION="$(git describe --tags --always)" --build-arg REVISION="$(git rev-parse HEAD)" -t personaldatad .
#   docker run --read-only --tmpfs /tmp -v pd-data:/data -p 127.0.0.1:50051:50051 -p 127.0.0.1:8080:8080 personaldatad
#
# The ports are published on loopback only: 8080 is plain HTTP (the REST API
# and the console, bearer tokens and personal data in clear) until TLS is
# configured (-tls-cert, -tls-key); publish on other interfaces only behind
# TLS or a proxy that terminates it.
#
# Production runs against MongoDB and gets its master keys from outside the
# image and the data (README, "Running several replicas").
#
# Where no base image can be pulled (this project's CI), build the binary with
# the local Go toolchain exactly as the build stage does, lay it out in a
# rootfs/ folder of the build context as the build stage does under /rootfs,
# and build with --build-arg ROOTFS=prebuilt: only scratch is needed
# (cmd/personaldatad/image_test.go does this with podman).

ARG GO_VERSION=1.26.8
ARG ROOTFS=build

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
COPY gen/go.mod gen/go.sum gen/
RUN go mod download
COPY . .
ARG VERSION=dev
# Static (no cgo: SQLite is modernc.org's pure Go), without local paths, and
# stamped with the version, which -version and personaldata_build_info show
# (the context has no .git to take it from). time/tzdata is compiled in
# (Swedish due dates on a host without a zone database); the CA bundle is
# copied for TLS to MongoDB (Go reads /etc/ssl/certs/ca-certificates.crt;
# SSL_CERT_FILE overrides it).
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X github.com/example/personaldata/cmd/personaldatad/server.version=${VERSION}" \
      -o /rootfs/root/personaldatad ./cmd/personaldatad \
 && mkdir -p /rootfs/root/etc/ssl/certs /rootfs/root/tmp /rootfs/data \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/root/etc/ssl/certs/ \
 && chmod 1777 /rootfs/root/tmp

# The same layout from the build context (see above).
FROM scratch AS prebuilt
COPY rootfs/ /rootfs/

FROM ${ROOTFS} AS rootfs

FROM scratch
# OCI annotations (github.com/opencontainers/image-spec, annotations.md):
# VERSION as the build stage stamps into the binary, REVISION the commit.
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="personaldatad" \
      org.opencontainers.image.description="Personal data service: subjects, consents, rights requests and audit over gRPC and REST, with a support console" \
      org.opencontainers.image.source="https://github.com/example/personaldata" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=rootfs /rootfs/root/ /
COPY --from=rootfs --chown=65532:65532 /rootfs/data /data
# Listen beyond loopback inside the container; data in the volume. SQLite puts
# its temporary files in TMPDIR or /tmp when writable, else in the working
# directory, so /data is that too.
ENV PERSONALDATA_GRPC_ADDR=:50051 \
    PERSONALDATA_HTTP_ADDR=:8080 \
    PERSONALDATA_DATA_DIR=/data
WORKDIR /data
VOLUME ["/data"]
EXPOSE 50051 8080
# Numeric, so a runtime can check it is not root without an /etc/passwd.
USER 65532:65532
# No shell and no curl for a HEALTHCHECK: probe over HTTP from the
# orchestrator (/livez, /readyz on port 8080) or gRPC health on 50051.
ENTRYPOINT ["/personaldatad"]
