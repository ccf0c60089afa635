# Weir developer commands. `make run` and `make test` are the two set-up
# commands of the README; both work on a fresh machine with rustup, python3
# with pip, and node with npm (for the Python and JavaScript plugins).

CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
WASM_DIR := $(TARGET_DIR)/wasm32-wasip2/release
# Shipped plugins, test guests and benchmark guests.
GUESTS := word-count dedup window-count fraud misbehave adversary not-an-operator bench-ops conformance counter-v1 counter-v2 counter-trap counter-bad-open nexmark-queries window-count-v2

# Python and JavaScript components: componentize-py 0.25.1 (pip-installed into
# $(PYTOOLS) unless COMPONENTIZE_PY is given) and componentize-js 0.23.0
# (`npm ci` in sdk/js). See sdk/python and sdk/js.
PYTOOLS := $(TARGET_DIR)/pytools
COMPONENTIZE_PY_VERSION := 0.25.1
COMPONENTIZE_PY ?= PYTHONPATH=$(PYTOOLS) $(PYTOOLS)/bin/componentize-py
COMPONENTIZE_JS := sdk/js/node_modules/.bin/componentize-js
JS_TOOLS := sdk/js/node_modules/.installed
WIT := wit/operator@0.1.0
PY_SDK := $(wildcard sdk/python/weir_sdk/*.py)
JS_SDK := $(wildcard sdk/js/src/*.js)
# component name : source directory
PY_GUESTS := word_count_py:plugins/word-count-py conformance_py:tests/conformance/python
JS_GUESTS := word_count_js:plugins/word-count-js conformance_js:tests/conformance/js

.PHONY: all setup plugins rust-plugins py-plugins js-plugins build run test bench bench-suite clean

all: build

setup:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

## Build the guest components (plugins and test fixtures) into $(WASM_DIR).
plugins: rust-plugins py-plugins js-plugins

rust-plugins: setup
	$(CARGO) build --release --target wasm32-wasip2 $(addprefix -p ,$(GUESTS))

py-plugins: $(foreach g,$(PY_GUESTS),$(WASM_DIR)/$(word 1,$(subst :, ,$(g))).wasm)
js-plugins: $(foreach g,$(JS_GUESTS),$(WASM_DIR)/$(word 1,$(subst :, ,$(g))).wasm)

$(PYTOOLS)/bin/componentize-py:
	python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target $(PYTOOLS) componentize-py==$(COMPONENTIZE_PY_VERSION)

$(JS_TOOLS): sdk/js/package-lock.json
	cd sdk/js && npm ci --no-audit --no-fund
	touch $@

# $(call py-guest,NAME,DIR) and $(call js-guest,NAME,DIR): $(WASM_DIR)/NAME.wasm
# from DIR, rebuilt only when a source of DIR, the SDK or the WIT changed.
define py-guest
$(WASM_DIR)/$(1).wasm: $(wildcard $(2)/*.py) $(PY_SDK) $(wildcard $(WIT)/*.wit) | $(if $(filter command line environment,$(origin COMPONENTIZE_PY)),,$(PYTOOLS)/bin/componentize-py)
	@mkdir -p $$(@D)
	$(COMPONENTIZE_PY) -d $(WIT) -w operator componentize -p $(2) -p sdk/python app -o $$@
endef
define js-guest
$(WASM_DIR)/$(1).wasm: $(wildcard $(2)/*.js) $(JS_SDK) $(wildcard $(WIT)/*.wit) | $(JS_TOOLS)
	@mkdir -p $$(@D)
	$(COMPONENTIZE_JS) $(2)/app.js --wit $(WIT) --world-name operator -d http fetch-event -o $$@
endef
$(foreach g,$(PY_GUESTS),$(eval $(call py-guest,$(word 1,$(subst :, ,$(g))),$(word 2,$(subst :, ,$(g))))))
$(foreach g,$(JS_GUESTS),$(eval $(call js-guest,$(word 1,$(subst :, ,$(g))),$(word 2,$(subst :, ,$(g))))))

## Build the host (target/release/weir) and the Rust plugins (all the main job
## needs; `make plugins` also builds the Python and JavaScript ones).
build: rust-plugins
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

## Every benchmark in one go (a few minutes; not part of CI): the Wasm boundary
## against native Rust, latency at fixed rates, state and checkpoints, Nexmark
## q0-q3, q5, q7, q8, hot swap. Results in $(TARGET_DIR)/bench-results.md. The Flink side
## by side is benches/flink/run.sh.
bench-suite: plugins
	$(CARGO) build --release -p weir-bench
	{ echo "# weir-bench results, $$(date -u +%FT%TZ), $$(nproc) cores"; echo; \
	  $(TARGET_DIR)/release/weir-bench --plugin $(WASM_DIR)/bench_ops.wasm --latency 10000,100000,1000000 --latency-seconds 2; echo; \
	  $(TARGET_DIR)/release/weir-bench --plugin $(WASM_DIR)/bench_ops.wasm --state --records 2000000 --keys 500000 --big-state-keys 200000; echo; \
	  $(TARGET_DIR)/release/weir-bench --plugin $(WASM_DIR)/bench_ops.wasm --nexmark; echo; \
	  $(TARGET_DIR)/release/weir-bench --plugin $(WASM_DIR)/bench_ops.wasm --swap --swap-v1 $(WASM_DIR)/counter_v1.wasm --swap-v2 $(WASM_DIR)/counter_v2.wasm; \
	} | tee $(TARGET_DIR)/bench-results.md

clean:
	$(CARGO) clean
	rm -rf out
