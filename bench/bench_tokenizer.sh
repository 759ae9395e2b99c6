#!/usr/bin/env bash
# bench_tokenizer.sh [BUILD_DIR] [MB]: o200k_harmony encoding throughput, ours next to tiktoken.
# Builds a mixed text of about MB megabytes (default 8) from the tokenizer test corpus (prose in
# many scripts, code, emoji, numbers; the test's pathological long runs left out), then times
# BUILD_DIR/bench/bench_tokenizer (C) and tiktoken 1.0.22 WASM in node on the same bytes,
# alternately, 5 rounds, then js-tiktoken once, and prints the best of each and the ratio.
# Needs scripts/setup.sh --test (.deps/tok).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}; MB=${2:-8}
DEPS=$PWD/.deps/tok/node_modules
RANKS=$DEPS/gpt-tokenizer/data/o200k_base.tiktoken
TEXT=$(mktemp "${TMPDIR:-/tmp}/bench-tok.XXXXXX")
trap 'rm -f "$TEXT"' EXIT
GPTOSS_BIN=unused TOK_DEPS=$DEPS TOK_RANKS=$RANKS node -e '
  const gen = require("./tests/tok_corpus_gen.cjs");
  const parts = gen.build().filter((s) => !gen.longPiece.test(s) && (s.length < 20000 || s.length > 500000));
  const one = parts.join("\n"), want = +process.argv[1] * 1e6;
  let out = [], n = 0;
  while (n < want) { out.push(one); n += Buffer.byteLength(one) + 1; }
  require("fs").writeFileSync(process.argv[2], out.join("\n"));' "$MB" "$TEXT"
echo "text: $(stat -c %s "$TEXT") bytes of mixed UTF-8 (tests/tok_corpus_gen.cjs), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
# Alternate the two (one timed encode each, 5 rounds) so that both see the same machine load;
# js-tiktoken once at the end (slow).
best_ours=0; best_ref=0
for round in 1 2 3 4 5; do
  ours=$("$BUILD/bench/bench_tokenizer" "$RANKS" "$TEXT" 1)
  ref=$(node bench/bench_tokenizer.cjs "$DEPS" "$TEXT" 1 tiktoken)
  a=$(echo "$ours" | sed -n 's/.*: \([0-9.]*\) MB\/s best.*/\1/p')
  b=$(echo "$ref" | sed -n '1s/.*: \([0-9.]*\) MB\/s best.*/\1/p')
  echo "round $round: ours $a MB/s, tiktoken WASM $b MB/s"
  best_ours=$(awk -v x="$a" -v y="$best_ours" 'BEGIN { print (x > y ? x : y) }')
  best_ref=$(awk -v x="$b" -v y="$best_ref" 'BEGIN { print (x > y ? x : y) }')
done
echo "$ours"
echo "$ref"
node bench/bench_tokenizer.cjs "$DEPS" "$TEXT" 1 js-tiktoken
awk -v a="$best_ours" -v b="$best_ref" 'BEGIN { printf "best of 5: ours %.2f MB/s, tiktoken WASM %.2f MB/s; ratio %.2fx\n", a, b, a / b }'
