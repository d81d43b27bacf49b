# syntax=docker/dockerfile:1
# The upid image: one static binary on distroless, running as nonroot (UID 65532).
#   docker build --build-arg VERSION=$(git describe --tags --always) -t ghcr.io/upid-dev/upid:dev .
# The version ldflags match the Makefile's `build` target.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
ARG REVISION=unknown
ARG BRANCH=unknown
ARG BUILDDATE=unknown
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w \
      -X github.com/prometheus/common/version.Version=${VERSION} \
      -X github.com/prometheus/common/version.Revision=${REVISION} \
      -X github.com/prometheus/common/version.Branch=${BRANCH} \
      -X github.com/prometheus/common/version.BuildUser=upid \
      -X github.com/prometheus/common/version.BuildDate=${BUILDDATE}" \
      -o /out/upid ./cmd/upid

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/upid /usr/local/bin/upid
USER 65532:65532
# Exporter, webhook metrics, scaler, webhook admission (HTTPS).
EXPOSE 9847 9848 9849 9443
ENTRYPOINT ["/usr/local/bin/upid"]
CMD ["exporter"]
