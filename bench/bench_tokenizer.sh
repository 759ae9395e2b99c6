#!/usr/bin/env bash
# bench_tokenizer.sh [BUILD_DIR] [MB]: o200k_harmony encoding throughput, ours next to tiktoken.
# Builds a mixed text of about MB megabytes (default 8) from the tokenizer test corpus (prose in
# many scripts, code, emoji, numbers; the test's pathological long runs left out), then times
# BUILD_DIR/bench/bench_tokenizer (C) and tiktoken 1.0.22 WASM (plus js-tiktoken) in node on the
# same bytes, best of 5, and prints the ratio. Needs scripts/setup.sh --test (.deps/tok).
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
ours=$("$BUILD/bench/bench_tokenizer" "$RANKS" "$TEXT" 5)
echo "$ours"
ref=$(node bench/bench_tokenizer.cjs "$DEPS" "$TEXT" 5)
echo "$ref"
a=$(echo "$ours" | sed -n 's/.*: \([0-9.]*\) MB\/s best.*/\1/p')
b=$(echo "$ref" | sed -n '1s/.*: \([0-9.]*\) MB\/s best.*/\1/p')
awk -v a="$a" -v b="$b" 'BEGIN { printf "ratio ours / tiktoken WASM (best runs): %.2fx\n", a / b }'
