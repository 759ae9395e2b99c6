#!/usr/bin/env bash
# Install what gptoss-mpi needs to build and test, if it is missing (Debian 12).
# Idempotent: checks with dpkg-query first and does nothing when all is there.
# As root it runs apt-get itself; otherwise it prints the exact command and fails.
set -euo pipefail

PKGS=(
  gcc make cmake pkg-config git             # toolchain
  openmpi-bin libopenmpi-dev                 # MPI
  libprotobuf-c-dev protobuf-c-compiler      # ONNX protos (export/)
  libhdf5-dev hdf5-tools                     # traces and reports (serial HDF5)
  libopenblas-dev                            # matrix work
  libcjson-dev                               # JSON (safetensors headers, config.json)
  python3-h5py python3-numpy                 # tests read HDF5 output back (never in the product)
)
# Extra packages for `make test` only: clang for the libFuzzer targets, its sanitizer runtime.
if [ "${1:-}" = "--test" ]; then
  PKGS+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "gptoss-mpi setup: missing packages: ${missing[*]}" >&2
  echo "run as root:  $cmd" >&2
  exit 1
fi
echo "gptoss-mpi setup: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
