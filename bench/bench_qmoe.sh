#!/usr/bin/env bash
# bench_qmoe.sh: ONNX Runtime's QMoE node against the floor of its algorithm, our C MoE and
# MatMulNBits, one MoE layer at T=256 (issue 13; bench/README.md "bench_qmoe"; the C program
# bench/bench_qmoe.c does the work and says what each line measures). CPU-bound: run it alone
# on the machine and read the load it prints first.
#
#   bench/bench_qmoe.sh BUILD_DIR WORK_DIR [REPS] [extra bench_qmoe options...]
#
# Writes `synth --preset 20b --layers 1 --seed 1` (real 20b widths: D = I = 2880, 32 experts,
# top-4; 2.8 GB) to WORK_DIR/ck when it is missing, and the one-node ONNX models with their
# data (1.0 GB) to WORK_DIR/models; runs BUILD_DIR/bench/bench_qmoe with 2 threads, T = 256 and
# REPS (7) alternating repetitions; IDLE_WAIT=S waits up to S seconds before each measurement
# for the machine to have no other runnable task (--idle-wait). Removes WORK_DIR/models at the
# end (the checkpoint stays).
set -euo pipefail
BUILD=${1:?usage: bench_qmoe.sh BUILD_DIR WORK_DIR [REPS] [options...]}
WORK=${2:?usage: bench_qmoe.sh BUILD_DIR WORK_DIR [REPS] [options...]}
REPS=${3:-7}
shift $(( $# < 3 ? $# : 3 ))
B=$BUILD/bench/bench_qmoe
[ -x "$B" ] || { echo "bench_qmoe.sh: $B missing (cmake --build $BUILD --target bench_qmoe)" >&2; exit 2; }
mkdir -p "$WORK/models"
[ -d "$WORK/ck" ] || "$BUILD/gptoss-mpi" synth "$WORK/ck" --preset 20b --layers 1 --seed 1 -q
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%H:%M) UTC"
"$B" "$WORK/ck" "$WORK/models" --T 256 --threads 2 --reps "$REPS" --idle-wait "${IDLE_WAIT:-0}" "$@"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$WORK/models"
