# mochi — see README.md. `make demo` sets up and runs the CPU demo; `make test`
# is what CI runs (.ci/run).

GO         ?= go
BENCH      ?= .
BENCH_PKGS ?= ./...
GO_FILES    = $(shell find . -name '*.go' -not -path './.*' -not -path './bin/*' -not -path './runs/*')

.PHONY: setup build demo test vet fmt-check bench

## setup: apt packages, Go modules, bin/mochi (scripts/setup.sh)
setup:
	scripts/setup.sh

## build: rebuild bin/mochi with the version stamp
build:
	scripts/setup.sh build

## demo: setup, then MoCHi pretraining on Fashion-MNIST (configs/fashion-mnist.yaml)
demo: setup
	bin/mochi pretrain --config configs/fashion-mnist.yaml --dry-run
	bin/mochi pretrain --config configs/fashion-mnist.yaml

## test: vet, formatting, all tests
test: vet fmt-check
	$(GO) test ./...

vet:
	$(GO) vet ./...

fmt-check:
	@unformatted="$$(gofmt -l $(GO_FILES))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi

## bench: benchmarks (BENCH=regexp, BENCH_PKGS=packages)
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem $(BENCH_PKGS)
