#!/usr/bin/env bash
# bench_synth.sh [GPTOSS_BIN] [DIR]: how close `synth` comes to the disk's sequential write speed.
# Writes `synth --preset 20b --layers 2` (3.27 GB) and, on the same disk, the same number of
# bytes with `dd if=/dev/zero bs=16M conv=fsync`; prints both times, MB/s and the ratio, and
# removes both outputs. Both include the final fsync (synth fsyncs every file it writes).
set -euo pipefail
BIN=${1:-build/mpi/gptoss-mpi}
DIR=${2:-${TMPDIR:-/tmp}}
OUT="$DIR/bench-synth.$$"
DD="$DIR/bench-dd.$$"
trap 'rm -rf "$OUT" "$OUT".tmp.* "$DD"' EXIT

now() { date +%s.%N; }

t0=$(now)
"$BIN" synth "$OUT" -q --preset 20b --layers 2
t1=$(now)
bytes=$(cat "$OUT"/*.safetensors | wc -c)
rm -rf "$OUT"
sync

count=$(( (bytes + 16777215) / 16777216 ))
t2=$(now)
dd if=/dev/zero of="$DD" bs=16M count="$count" conv=fsync status=none
t3=$(now)
ddbytes=$(stat -c %s "$DD")
rm -f "$DD"

awk -v b="$bytes" -v t0="$t0" -v t1="$t1" -v db="$ddbytes" -v t2="$t2" -v t3="$t3" 'BEGIN {
  s = t1 - t0; ds = t3 - t2
  printf "synth 20b --layers 2: %.0f bytes in %.2f s = %.0f MB/s\n", b, s, b / s / 1e6
  printf "dd bs=16M conv=fsync: %.0f bytes in %.2f s = %.0f MB/s\n", db, ds, db / ds / 1e6
  printf "synth / dd throughput: %.2f\n", (b / s) / (db / ds)
}'
