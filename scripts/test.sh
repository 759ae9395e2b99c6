#!/usr/bin/env bash
# The whole test suite (what `make test` and CI run):
#   1. the normal build and every ctest test (labels unit, mpi, golden, fault, slow, slurm, ...)
#   2. an ASan + UBSan build and its tests labelled unit, export, parity, mpi and tokenizer (not slow or
#      slurm: those ran above), with leak detection on: the sanitizer options and the one
#      suppression file (tests/lsan.supp: ONNX Runtime's CreateEnv block, Open MPI's own
#      allocations) come from tests/CMakeLists.txt for every test, which also triples each
#      test's timeout there (the sanitized build is 3-6x slower)
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
# Say whether LeakSanitizer works here: a deliberate 7-byte leak, built like the tests, must be
# reported (some machines run without it; a fresh one may not, and must not fail then).
probe=$(mktemp -d)
printf '#include <stdlib.h>\nvoid *volatile p;\nint main(void){p=malloc(7);p=0;return 0;}\n' >"$probe/leak.c"
cc -fsanitize=address,undefined -g "$probe/leak.c" -o "$probe/leak"
if ASAN_OPTIONS=detect_leaks=1 "$probe/leak" >/dev/null 2>"$probe/out" || ! grep -q "LeakSanitizer" "$probe/out"; then
  echo "sanitizer run: LeakSanitizer is NOT active on this machine (a deliberate 7-byte leak was not reported): leaks are not checked below"
else
  echo "sanitizer run: LeakSanitizer is active (a deliberate 7-byte leak was reported): every test below is checked for leaks"
fi
rm -rf "$probe"
step "ctest -L 'unit|export|parity|mpi|tokenizer' -LE 'slow|slurm' (build-asan/)"
(cd build-asan && ctest -j "$JOBS" -L 'unit|export|parity|mpi|tokenizer' -LE 'slow|slurm' --output-on-failure --timeout 1500)

step "fuzzers (${FUZZ_SECONDS}s each)"
bash scripts/fuzz.sh build-fuzz "$FUZZ_SECONDS"
