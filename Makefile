# Weir developer commands. `make run` and `make test` are the two set-up
# commands of the README; both work on a fresh machine with rustup.

CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
WASM_DIR := $(TARGET_DIR)/wasm32-wasip2/release
# Shipped plugins, test guests and benchmark guests.
GUESTS := word-count dedup misbehave not-an-operator bench-ops

.PHONY: all setup plugins build run test bench clean

all: build

setup:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

## Build the guest components (plugins and test fixtures) into $(WASM_DIR).
plugins: setup
	$(CARGO) build --release --target wasm32-wasip2 $(addprefix -p ,$(GUESTS))

## Build the host (target/release/weir) and the plugins.
build: plugins
	$(CARGO) build --release

## Build everything and run the word-count example on embedded defaults.
run: build
	WEIR_PLUGINS=$(WASM_DIR) $(TARGET_DIR)/release/weir run examples/wordcount/pipeline.yaml
	@echo "output: $${WEIR_OUTPUT:-out/wordcount}/part-*.jsonl"

## All tests: unit, integration and end-to-end (the latter run the weir binary).
test: plugins
	$(CARGO) test --release

## Benchmarks (not part of the tests); see benches/README.md.
bench: plugins
	$(CARGO) run --release -p weir-bench -- --plugin $(WASM_DIR)/bench_ops.wasm --per-record

clean:
	$(CARGO) clean
	rm -rf out
