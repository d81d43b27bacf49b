# The two commands a newcomer needs are `make demo` and `make test`; see README.md.

GO        ?= go
BIN_DIR   ?= bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse --verify -q HEAD 2>/dev/null || echo unknown)
BRANCH    ?= $(shell git symbolic-ref --short -q HEAD 2>/dev/null || echo unknown)
BUILDDATE ?= $(shell date -u +%Y%m%d-%H:%M:%S)
VERSION_PKG := github.com/prometheus/common/version
LDFLAGS := -s -w \
	-X $(VERSION_PKG).Version=$(VERSION) \
	-X $(VERSION_PKG).Revision=$(REVISION) \
	-X $(VERSION_PKG).Branch=$(BRANCH) \
	-X $(VERSION_PKG).BuildUser=upid \
	-X $(VERSION_PKG).BuildDate=$(BUILDDATE)

# Test packages start real servers; 2 cores run two packages at once.
# -race: every test runs under the race detector (it needs cgo, so
# hack/setup.sh installs gcc when it is missing). It costs the suite about
# 1.5x the time on a quiet machine (README.md, Tests); the slowest package,
# cmd/upid, stays well inside the timeout.
TEST_FLAGS ?= -race -count=1 -timeout 30m
BENCH_FLAGS ?= -run '^$$' -bench . -benchmem -count 1 -timeout 60m

IMAGE ?= ghcr.io/upid-dev/upid:$(VERSION)

.PHONY: all build image test unit lint generate demo bench deps clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN_DIR)/upid ./cmd/upid

# image builds the container image (Dockerfile at the repository root) with the
# same version stamps as build.
image:
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
	  --build-arg BRANCH=$(BRANCH) --build-arg BUILDDATE=$(BUILDDATE) -t $(IMAGE) .

# deps installs etcd, Prometheus, promtool and Alertmanager from Debian and
# builds kube-apiserver, kube-controller-manager, helm and kustomize once
# (cached outside the repo).
deps:
	@hack/setup.sh >/dev/null

test: lint
	@eval "$$(hack/setup.sh)" && $(GO) test $(TEST_FLAGS) ./...

# unit runs the tests without installing anything; those that need a real
# server fail with the command that installs it.
unit:
	$(GO) test $(TEST_FLAGS) ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# generate writes every generated file: the configuration reference, the
# alert rules, the dashboards' JSON and the Kubernetes objects under deploy/generated.
generate:
	$(GO) run ./cmd/upid config docs > docs/configuration.md
	$(GO) run ./internal/generate
	@eval "$$(hack/tools.sh)" && $(GO) test -count=1 ./deploy -run '^TestGeneratedFiles$$' -update

# demo serves the exporter's metrics for an embedded cluster built from real
# traces; it prints the URL and a summary, and runs until Ctrl-C.
demo: build
	$(BIN_DIR)/upid exporter --demo

bench:
	@eval "$$(hack/setup.sh)" && $(GO) test $(BENCH_FLAGS) ./...

clean:
	rm -rf $(BIN_DIR)
