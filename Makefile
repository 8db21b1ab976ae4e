# hopguard — make targets a newcomer can guess.
GO      ?= go
BIN     := bin/hopguard
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
CONFIG  ?= examples/shop/config
# How long each fuzz target runs in `make fuzz`.
# An execution count rather than a duration: go1.26's fuzz coordinator can fail a
# target with "context deadline exceeded" when a duration ends mid-execution
# (golang/go#75804, fixed in go1.27); a count has no deadline to race.
FUZZTIME ?= 300000x

.PHONY: all build test test-short testdata lint run demo bench bench-quick bench-micro fuzz clean

all: lint test build

## build: compile bin/hopguard
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/hopguard

## test: vet, format check, and every test with the race detector (what CI runs)
test: lint
	$(GO) test -race -count=1 -timeout 10m ./...

## test-short: quick tests without the race detector
test-short:
	$(GO) test -count=1 ./...

## testdata: rewrite golden files after an intended change, then review the diff
testdata:
	$(GO) test ./controlplane/translate/... ./controlplane/bootstrap/... -run Golden -update
	$(GO) test ./controlplane/translate/... ./controlplane/bootstrap/... -run Golden

## lint: go vet and gofmt
lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## run: the all-in-one server on the bundled example (Ctrl-C to stop)
run:
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/hopguard run --config $(CONFIG) --log-format console --audit-log .hopguard/audit.jsonl

## demo: the example shop on loopback under a fault, with a live view (Ctrl-C to stop early)
demo:
	GRPC_EXPERIMENTAL_XDS_EXT_PROC_ON_CLIENT=true $(GO) run ./cmd/hopguard demo

## bench: every benchmark scenario at full size, then bench/results/*.json and bench/REPORT.md (minutes)
bench:
	GRPC_EXPERIMENTAL_XDS_EXT_PROC_ON_CLIENT=true $(GO) run ./bench/cmd/hopguard-bench
	$(GO) run ./bench/cmd/hopguard-bench -report-only -readme README.md

## bench-quick: every scenario at a small size (< 2 min) into a temp dir; fails when results are missing or inconsistent
bench-quick:
	@out=$$(mktemp -d); trap 'rm -rf "$$out"' EXIT; \
	GRPC_EXPERIMENTAL_XDS_EXT_PROC_ON_CLIENT=true $(GO) run ./bench/cmd/hopguard-bench -quick -out "$$out/results" -report "$$out/REPORT.md"

## bench-micro: micro-benchmarks with allocation counts
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./...

## fuzz: run every fuzz target for FUZZTIME (executions) each (they also run over their seed corpus in `make test`)
FUZZ_TARGETS := \
	./api/v1alpha1:FuzzDecode ./api/v1alpha1:FuzzLoadValidate \
	./filters/engine:FuzzParseGRPCTimeout ./filters/engine:FuzzParseUnixMillis \
	./filters/engine:FuzzParseMillis ./filters/engine:FuzzParseAttempt ./filters/engine:FuzzDecide \
	./filters/extproc:FuzzProcessStream \
	./filters/idempotency:FuzzValidKey ./filters/idempotency:FuzzFingerprint
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name"; \
		$(GO) test $$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME); \
	done

clean:
	rm -rf bin
