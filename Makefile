# The two commands of the README, plus the pieces they are made of.
#   make demo   set up, build, write a small synthetic checkpoint, run the pipeline, say where results are
#   make test   set up, build, run the whole test suite (incl. sanitizer build and fuzzers)
# Both are idempotent and quick when nothing changed.

BUILD ?= build
JOBS ?= 2
DEMO_DIR ?= demo-out

.PHONY: all setup build demo test test-main test-asan test-fuzz clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	@bash scripts/build.sh $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

demo: build
	@bash scripts/demo.sh $(BUILD) $(DEMO_DIR)

test:
	@bash scripts/setup.sh --test
	@bash scripts/test.sh

clean:
	rm -rf $(BUILD) build-asan build-fuzz $(DEMO_DIR)
