#!/usr/bin/env bash
# The whole test suite (what `make test` and CI run):
#   1. the normal build and every ctest test (labels unit, mpi, golden, fault, slow, ...)
#   2. an ASan + UBSan build and its unit tests
#   3. the libFuzzer targets (clang) for a bounded time each
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-2}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

step() { printf '\n== %s ==\n' "$*"; }

step "build (build/)"
bash scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo
step "ctest (build/)"
(cd build && ctest -j "$JOBS" --output-on-failure --timeout 1500)

step "sanitizer build (build-asan/: ASan + UBSan)"
bash scripts/build.sh build-asan -DCMAKE_BUILD_TYPE=Debug -DGPTOSS_SANITIZE=ON
step "ctest -L unit (build-asan/)"
# LSan suppressions: ONNX Runtime 1.30 leaks one 14-byte block inside CreateEnv, once per process
# (not a Release call we miss; see the file). The suppression names our wrapper frame
# ort_create_env, so it hides nothing else; tests that load ORT also set fast_unwind_on_malloc=0
# (tests/ort.cmake) so that LSan can unwind through the library to that frame.
lsan_supp="$PWD/tests/lsan-onnxruntime.supp"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
   LSAN_OPTIONS="suppressions=$lsan_supp" \
   ctest -j "$JOBS" -L unit --output-on-failure --timeout 1500)

step "fuzzers (${FUZZ_SECONDS}s each)"
bash scripts/fuzz.sh build-fuzz "$FUZZ_SECONDS"
