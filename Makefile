# mochi — see README.md. `make demo` sets up and runs the CPU demo; `make test`
# sets up what is missing and runs what CI runs (.ci/run).

# go from PATH, else the toolchain scripts/setup.sh finds in /usr/local/go.
GO         ?= $(shell command -v go || echo /usr/local/go/bin/go)
TESTFLAGS  ?=
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

## demo: setup, then MoCHi pretraining on Fashion-MNIST (configs/fashion-mnist.yaml);
## a second `make demo` continues the run in $(DEMO_RUN) (a finished one is left as it is)
DEMO_RUN = runs/fashion-mnist
demo: setup
	@if [ -e $(DEMO_RUN)/checkpoints/last.ckpt ]; then \
		echo "make demo: continuing the run in $(DEMO_RUN) (remove that folder to start over)"; \
		bin/mochi pretrain --config configs/fashion-mnist.yaml --resume $(DEMO_RUN)/checkpoints/last.ckpt; \
	else \
		bin/mochi pretrain --config configs/fashion-mnist.yaml --dry-run && \
		bin/mochi pretrain --config configs/fashion-mnist.yaml; \
	fi

## test: setup (the cgo build needs OpenBLAS's headers, the tests the
## dataset), then vet, formatting, all tests, and the purego build's
## convolution modes (its cpu.conv auto falls back to blas)
test: setup
	$(MAKE) vet fmt-check
	$(GO) test $(TESTFLAGS) ./...
	$(GO) test -tags purego $(TESTFLAGS) -run 'ConvModes|ConvPaths|SetConvMode|Bench' ./pkg/device/cpu ./cmd/mochi

vet:
	$(GO) vet ./...
	$(GO) vet -tags purego ./...

fmt-check:
	@unformatted="$$(gofmt -l $(GO_FILES))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi

## bench: benchmarks (BENCH=regexp, BENCH_PKGS=packages)
bench:
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem $(BENCH_PKGS)
