# minnow: make deps | test | test-long | bench | demo | lint
SHELL := /bin/bash
export MINNOW_DATA ?= $(abspath ../shared/data)
GO ?= go

.PHONY: deps deps-node test test-long bench demo lint build

deps: ## Install OpenBLAS when missing (as root, through apt-get); without it, build with CGO_ENABLED=0.
	@if ldconfig -p | grep -q 'libopenblas\.so ' && { [ -e /usr/include/x86_64-linux-gnu/cblas.h ] || [ -e /usr/include/cblas.h ]; }; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev >/dev/null; \
	else echo "deps: libopenblas-dev is missing and this is not root: install it, or build with CGO_ENABLED=0 (pure-Go BLAS)" >&2; exit 1; fi

deps-node: ## Install the npm reference tools (tiktoken) that benchmarks compare against.
	@command -v npm >/dev/null || { if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; else echo "deps-node: npm is missing" >&2; exit 1; fi; }
	@[ -d tools/node/node_modules/tiktoken ] || (cd tools/node && npm ci --silent --no-audit --no-fund)

build: deps
	$(GO) build ./...

test: deps lint
	$(GO) test -count=1 ./...
	CGO_ENABLED=0 $(GO) test -count=1 ./tensor/...
	CGO_ENABLED=0 $(GO) test -count=1 -tags purego ./tensor/cpu/...
	cd interop/gorgonia && $(GO) test -count=1 ./...

test-long: test
	$(GO) test -count=1 -run . -bench . -benchtime 1x ./...

bench: deps deps-node
	$(GO) run ./cmd/minnow bench core
	$(GO) run ./cmd/minnow bench tokenize --compare

demo: deps
	$(GO) run ./cmd/minnow version
	$(GO) run ./cmd/minnow bench core --steps 5

lint:
	@out=$$(gofmt -l . ); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd interop/gorgonia && $(GO) vet ./...
