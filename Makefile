# Weir developer commands. `make run` and `make test` are the two set-up
# commands of the README; both work on a fresh machine with rustup, python3
# with pip, and node with npm (for the Python and JavaScript plugins).

CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
# Guest components are built in a target directory of their own, into
# $(GUEST_DIR): by `make plugins`, and by the build script of tests/support
# (tests/support/build.rs, for the guests the tests load) with the same command
# lines, so that a plain `cargo test` finds them and neither redoes the other's
# work. `make plugins` then copies them into $(WASM_DIR), where the examples,
# the README and weir-bench look for them.
GUEST_TARGET := $(TARGET_DIR)/guests
GUEST_DIR := $(GUEST_TARGET)/wasm32-wasip2/release
WASM_DIR := $(TARGET_DIR)/wasm32-wasip2/release
# Rust guests: shipped plugins, test guests and benchmark guests, i.e. every
# crate under plugins/, tests/guests/ and benches/guests/ (build.rs takes the
# first two).
GUESTS := $(shell sed -n '/^\[package\]/,/^\[/s/^name *= *"\(.*\)"/\1/p' $(wildcard plugins/*/Cargo.toml tests/guests/*/Cargo.toml benches/guests/*/Cargo.toml))
# As build.rs runs it: host RUSTFLAGS would replace the wasm32 rustflags of
# .cargo/config.toml, and a build-dir of the user's config is not ours.
GUEST_CARGO := env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_BUILD_DIR=$(GUEST_TARGET) $(CARGO)

# Python and JavaScript components: componentize-py 0.25.1 (pip-installed into
# $(PYTOOLS) unless COMPONENTIZE_PY is given) and componentize-js 0.23.0
# (`npm ci` in sdk/js). See sdk/python and sdk/js.
PYTOOLS := $(TARGET_DIR)/pytools
COMPONENTIZE_PY_VERSION := 0.25.1
COMPONENTIZE_PY ?= PYTHONPATH=$(PYTOOLS) $(PYTOOLS)/bin/componentize-py
COMPONENTIZE_JS := sdk/js/node_modules/.bin/componentize-js
JS_TOOLS := sdk/js/node_modules/.installed
DASH_TOOLS := tests/dashboard/node_modules/.installed
# Every WIT file: a world of 0.3.0 includes 0.1.0's interfaces.
WIT_FILES := $(wildcard wit/*/*.wit)
PY_SDK := $(wildcard sdk/python/weir_sdk/*.py)
JS_SDK := $(wildcard sdk/js/src/*.js)
# component name : source directory
# component name : source directory : WIT package : world (changelog-operator of
# operator@0.3.0: a changelog operator, with row kinds; scalar-function of
# function@0.1.0: SQL functions)
PY_GUESTS := word_count_py:plugins/word-count-py:operator@0.1.0:operator conformance_py:tests/conformance/python:operator@0.1.0:operator \
	changelog_count_py:tests/conformance/changelog-python:operator@0.3.0:changelog-operator \
	sql_functions_py:plugins/sql-functions-py:function@0.1.0:scalar-function
JS_GUESTS := word_count_js:plugins/word-count-js:operator@0.1.0:operator conformance_js:tests/conformance/js:operator@0.1.0:operator \
	changelog_count_js:tests/conformance/changelog-js:operator@0.3.0:changelog-operator \
	sql_functions_js:plugins/sql-functions-js:function@0.1.0:scalar-function

.PHONY: all prereqs setup fuzz plugins rust-plugins py-plugins js-plugins build run test bench bench-suite clean

all: build

# System packages the host build needs: RocksDB (C++, bindings generated with
# libclang) and librdkafka (C, with OpenSSL) are built from source. Checked
# first, so that a fresh machine gets the one command to run instead of an
# error deep in a build script.
prereqs:
	@missing=""; \
	command -v cc >/dev/null || missing="$$missing gcc"; \
	command -v c++ >/dev/null || missing="$$missing g++"; \
	{ [ -n "$$LIBCLANG_PATH" ] || { PATH="$$PATH:/sbin:/usr/sbin" ldconfig -p 2>/dev/null | grep -q 'libclang\(-[0-9.]*\)\?\.so'; } || ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1; } || missing="$$missing libclang-dev"; \
	{ command -v pkg-config >/dev/null && pkg-config --exists openssl; } || missing="$$missing libssl-dev pkg-config"; \
	command -v python3 >/dev/null || missing="$$missing python3"; \
	if [ -n "$$missing" ]; then \
	  echo "Weir's build needs system packages that are missing:$$missing"; \
	  echo "install them with:  sudo apt-get install -y$$missing"; \
	  exit 1; \
	fi

setup: prereqs
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

## Build the guest components (plugins and test fixtures) into $(GUEST_DIR)
## and copy them to $(WASM_DIR).
plugins: rust-plugins py-plugins js-plugins

# Copy the components of $(GUEST_DIR) that differ to $(WASM_DIR). Unlink
# first: a file there may be a hard link into cargo's deps/ (a `cargo build
# --target wasm32-wasip2` without --target-dir writes there).
define publish
@mkdir -p $(WASM_DIR)
@for f in $(GUEST_DIR)/*.wasm; do [ -f "$$f" ] || continue; t="$(WASM_DIR)/$${f##*/}"; \
	  cmp -s "$$f" "$$t" || { rm -f "$$t" && cp -p "$$f" "$$t" && echo "published $$t"; }; done
endef

rust-plugins: setup
	$(GUEST_CARGO) build --release --target wasm32-wasip2 --target-dir $(GUEST_TARGET) $(addprefix -p ,$(GUESTS))
	$(publish)

py-plugins: $(foreach g,$(PY_GUESTS),$(GUEST_DIR)/$(word 1,$(subst :, ,$(g))).wasm)
	$(publish)
js-plugins: $(foreach g,$(JS_GUESTS),$(GUEST_DIR)/$(word 1,$(subst :, ,$(g))).wasm)
	$(publish)

$(PYTOOLS)/bin/componentize-py:
	python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target $(PYTOOLS) componentize-py==$(COMPONENTIZE_PY_VERSION)

$(JS_TOOLS): sdk/js/package-lock.json
	cd sdk/js && npm ci --no-audit --no-fund
	touch $@

# playwright-core for the dashboard's browser tests (runtime/cli/tests/e2e/dashboard.rs),
# which drive Debian's Chromium (/usr/bin/chromium: `apt-get install chromium`).
$(DASH_TOOLS): tests/dashboard/package-lock.json
	cd tests/dashboard && npm ci --no-audit --no-fund
	touch $@

# $(call py-guest,NAME,DIR,WIT,WORLD) and $(call js-guest,NAME,DIR,WIT,WORLD):
# $(GUEST_DIR)/NAME.wasm from DIR for world WORLD of wit/WIT, rebuilt only when a source of DIR, the SDK
# or the WIT changed (the rule build.rs follows too). Written aside and renamed, so that an interrupted
# build leaves nothing that looks up to date.
define py-guest
$(GUEST_DIR)/$(1).wasm: $(wildcard $(2)/*.py) $(PY_SDK) $(WIT_FILES) | $(if $(filter command line environment,$(origin COMPONENTIZE_PY)),,$(PYTOOLS)/bin/componentize-py)
	@mkdir -p $$(@D)
	$(COMPONENTIZE_PY) -d wit/$(3) -w $(4) componentize -p $(2) -p sdk/python app -o $$(@D)/.$(1).partial.wasm
	mv $$(@D)/.$(1).partial.wasm $$@
endef
define js-guest
$(GUEST_DIR)/$(1).wasm: $(wildcard $(2)/*.js) $(JS_SDK) $(WIT_FILES) | $(JS_TOOLS)
	@mkdir -p $$(@D)
	$(COMPONENTIZE_JS) $(2)/app.js --wit wit/$(3) --world-name $(4) -d http fetch-event -o $$(@D)/.$(1).partial.wasm
	mv $$(@D)/.$(1).partial.wasm $$@
endef
$(foreach g,$(PY_GUESTS),$(eval $(call py-guest,$(word 1,$(subst :, ,$(g))),$(word 2,$(subst :, ,$(g))),$(word 3,$(subst :, ,$(g))),$(word 4,$(subst :, ,$(g))))))
$(foreach g,$(JS_GUESTS),$(eval $(call js-guest,$(word 1,$(subst :, ,$(g))),$(word 2,$(subst :, ,$(g))),$(word 3,$(subst :, ,$(g))),$(word 4,$(subst :, ,$(g))))))

## Build the host (target/release/weir) and the Rust plugins (all the main job
## needs; `make plugins` also builds the Python and JavaScript ones).
build: rust-plugins
	$(CARGO) build --release

## Build everything and run the word-count example on embedded defaults.
run: build
	WEIR_PLUGINS=$(WASM_DIR) $(TARGET_DIR)/release/weir run examples/wordcount/pipeline.yaml
	@echo "output: $${WEIR_OUTPUT:-out/wordcount}/part-*.jsonl"

## All tests: unit, integration and end-to-end (the latter run the weir binary).
## `make plugins` first installs the Python and JavaScript component builders;
## the guests themselves `cargo test` builds too (tests/support/build.rs).
test: plugins $(DASH_TOOLS)
	$(CARGO) test --release
	$(MAKE) fuzz

## Fuzzing (fuzz/, libFuzzer through libfuzzer-sys): the spec parser and the
## host's check of a guest's `emitted` reply, FUZZ_SECONDS each (`make test`
## runs them for 20 s; run longer by hand). Built by plain cargo on the stable
## toolchain with the coverage instrumentation cargo-fuzz adds (SanitizerCoverage
## with inline 8-bit counters, PC tables and compare tracing), debug assertions
## and overflow checks, but without AddressSanitizer, which needs nightly: the
## targets' code is safe Rust, and a fresh machine then needs neither nightly
## nor cargo-fuzz (`cargo +nightly fuzz run spec` works too). New inputs go to
## $(TARGET_DIR)/fuzz-corpus, crashes to $(TARGET_DIR)/fuzz-artifacts.
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := spec emitted
FUZZ_TARGET_DIR := $(abspath $(TARGET_DIR))/fuzz
HOST_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
FUZZ_RUSTFLAGS := --cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
	-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
	-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-simplifycfg-branch-fold-threshold=0 \
	-Cdebug-assertions -Coverflow-checks

fuzz:
	cd fuzz && env -u CARGO_ENCODED_RUSTFLAGS RUSTFLAGS="$(FUZZ_RUSTFLAGS)" $(CARGO) build --release --locked \
	  --target $(HOST_TRIPLE) --target-dir $(FUZZ_TARGET_DIR) --bins
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(TARGET_DIR)/fuzz-corpus/$$t $(TARGET_DIR)/fuzz-artifacts/$$t fuzz/corpus/$$t; \
	  echo "fuzzing $$t for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_TARGET_DIR)/$(HOST_TRIPLE)/release/$$t $(abspath $(TARGET_DIR))/fuzz-corpus/$$t fuzz/corpus/$$t \
	    -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=$(abspath $(TARGET_DIR))/fuzz-artifacts/$$t/ || exit 1; \
	done

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
