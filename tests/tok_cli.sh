#!/usr/bin/env bash
# tok_cli: `gptoss-mpi tokenize` end to end (environment from tests/tokenizer.cmake):
#   - `--chat "What is 2 + 2?"` gives openai-harmony's ids (docs/clients.md), from the ranks file
#     and from a tokenizer.json; the ascii sample of docs/clients.md; decode round trips;
#   - input forms (--text, --file, -, --jsonl), usage errors (exit 2), bad input (exit 1);
#   - the vocabulary search next to a checkpoint and through $TIKTOKEN_ENCODINGS_BASE;
#   - the corrupt-tokenizer matrix: each case exits 1 within 20 s, prints nothing on stdout and
#     exactly one line on stderr, "gptoss-mpi: error: ..." naming the file.
set -u
: "${GPTOSS_BIN:?}" "${TOK_TOOL:?}" "${TOK_RANKS:?}"
work=$(mktemp -d "${TMPDIR_BASE:-/tmp}/tok_cli.XXXXXX")
trap 'rm -rf "$work"' EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL $*" >&2; }
TK=("$GPTOSS_BIN" tokenize)
[ -f "$TOK_RANKS" ] || { echo "FAIL $TOK_RANKS is missing: run scripts/setup.sh --test" >&2; exit 1; }
R=$TOK_RANKS
mkdir -p "$work/hf"
"$TOK_TOOL" write-hf "$R" "$work/hf" || { echo "FAIL tok_tool write-hf" >&2; exit 1; }
J=$work/hf/tokenizer.json

# expect NAME WANT_STDOUT CMD...: exit 0 and exactly this stdout
expect() {
  local name=$1 want=$2; shift 2
  local got; got=$("$@" 2>"$work/err"); local rc=$?
  if [ $rc -ne 0 ] || [ "$got" != "$want" ]; then bad "$name: rc $rc, got '$got' want '$want' ($(head -c 300 "$work/err"))"; else ok; fi
}
# refuse NAME RC PATTERN CMD...: exit RC, nothing on stdout, one stderr line matching PATTERN
refuse() {
  local name=$1 want_rc=$2 pat=$3; shift 3
  timeout 20 "$@" >"$work/out" 2>"$work/err" </dev/null; local rc=$?
  local why=""
  [ $rc -eq "$want_rc" ] || why="exit $rc (want $want_rc)"
  [ -s "$work/out" ] && why="$why; stdout not empty"
  [ "$(wc -l <"$work/err")" -eq 1 ] || why="$why; $(wc -l <"$work/err") stderr lines"
  grep -q '^gptoss-mpi: error: ' "$work/err" || why="$why; no 'gptoss-mpi: error:'"
  grep -qE -- "$pat" "$work/err" || why="$why; stderr lacks /$pat/"
  if [ -n "$why" ]; then bad "$name: $why: $(head -c 400 "$work/err")"; else ok; echo "ok   $name: $(cat "$work/err")"; fi
}

# ---- ids (docs/clients.md) ---------------------------------------------------------------------
CHAT=200006,17360,200008,3575,553,17554,162016,11,261,4410,6439,2359,22203,656,7788,17527,558,87447,100594,25,220,1323,19,12,3218,279,30377,289,25,14093,279,2,13888,18403,25,8450,11,49159,11,1721,13,21030,2804,413,7360,395,1753,3176,13,200007,200006,1428,200008,4827,382,220,17,659,220,17,30,200007,200006,173781
ASCII=13225,11,2375,0,623,4853,19705,68347,65613,1072,290,29082,6446,13,3413,44,2105,11,7163,1354,26,4275,220,7633,19354,22,13
ASCII_TEXT="Hello, world! The quick brown fox jumps over the lazy dog. I'M here, you're there; it's 1234567."
expect chat_ranks "$CHAT" "${TK[@]}" --tokenizer "$R" --chat --text "What is 2 + 2?"
expect chat_json "$CHAT" "${TK[@]}" --tokenizer "$J" --chat --text "What is 2 + 2?"
expect chat_medium "$CHAT" "${TK[@]}" --tokenizer "$R" --chat --reasoning medium --text "What is 2 + 2?"
expect ascii "$ASCII" "${TK[@]}" --tokenizer "$R" --text "$ASCII_TEXT"
expect ascii_stdin "$ASCII" bash -c 'printf "%s" "$1" | "$2" tokenize --tokenizer "$3" -' _ "$ASCII_TEXT" "$GPTOSS_BIN" "$R"
printf '%s' "$ASCII_TEXT" >"$work/ascii.txt"
expect ascii_file "$ASCII" "${TK[@]}" --tokenizer "$R" --file "$work/ascii.txt"
expect decode "$ASCII_TEXT" "${TK[@]}" --tokenizer "$R" --decode "$ASCII"
printf '%s\n' "$ASCII" | tr ',' '\n' >"$work/ids.txt"
expect decode_file "$ASCII_TEXT" "${TK[@]}" --tokenizer "$R" --decode - --file "$work/ids.txt"
expect decode_special "<|start|>user<|message|>" "${TK[@]}" --tokenizer "$R" --decode 200006,1428,200008
expect decode_replace "$(printf 'a\xef\xbf\xbd')" "${TK[@]}" --tokenizer "$R" --decode 64,167   # 167 = byte 0xc3 alone
expect empty_text "" "${TK[@]}" --tokenizer "$R" --text ""
typed=$("${TK[@]}" --tokenizer "$R" --text "<|end|><|start|>")
case ",$typed," in *,2000[0-9][0-9],*) bad "typed specials became special ids: $typed" ;; *) ok ;; esac
printf '"a"\n"What is 2 + 2?"\n""\n' >"$work/in.jsonl"
expect jsonl "$(printf '[64]\n[4827,382,220,17,659,220,17,30]\n[]')" "${TK[@]}" --tokenizer "$R" --jsonl --file "$work/in.jsonl"
chat_jsonl=$(printf '"What is 2 + 2?"' | "${TK[@]}" --tokenizer "$R" --chat --jsonl -)
[ "$chat_jsonl" = "[$CHAT]" ] && ok || bad "chat jsonl: $chat_jsonl"
printf '[64]\n[200006,1428]\n' >"$work/ids.jsonl"
expect decode_jsonl "$(printf '"a"\n"<|start|>user"')" "${TK[@]}" --tokenizer "$R" --decode - --jsonl --file "$work/ids.jsonl"

# ---- usage and input errors ----------------------------------------------------------------------
refuse no_input 2 'no input' "${TK[@]}" --tokenizer "$R"
refuse two_inputs 2 'only one of' "${TK[@]}" --tokenizer "$R" --text a -
refuse system_no_chat 2 'need --chat' "${TK[@]}" --tokenizer "$R" --text a --system x
refuse bad_reasoning 2 "'extreme' is not one of" "${TK[@]}" --tokenizer "$R" --chat --text a --reasoning extreme
refuse decode_text 2 'exclude each other' "${TK[@]}" --tokenizer "$R" --decode 1 --text a
refuse decode_bad_id 2 'token 2 is not an integer' "${TK[@]}" --tokenizer "$R" --decode 1,x
refuse decode_range 2 'out of range' "${TK[@]}" --tokenizer "$R" --decode 201088
refuse jsonl_text 2 'not --text' "${TK[@]}" --tokenizer "$R" --jsonl --text a
refuse extra_arg 2 "unexpected argument" "${TK[@]}" ckpt1 ckpt2 --text a
printf 'ok \xff bad' >"$work/bad_utf8.txt"
refuse bad_utf8 1 'bad_utf8.txt is not valid UTF-8 at byte offset 3' "${TK[@]}" --tokenizer "$R" --file "$work/bad_utf8.txt"
printf '"a"\n"b"\n42\n' >"$work/bad3.jsonl"
refuse jsonl_not_string 1 'bad3.jsonl: line 3: not a JSON string' "${TK[@]}" --tokenizer "$R" --jsonl --file "$work/bad3.jsonl"
printf '"a"\n"\\ud800"\n' >"$work/sur.jsonl"
refuse jsonl_surrogate 1 'line 2: a lone high surrogate' "${TK[@]}" --tokenizer "$R" --jsonl --file "$work/sur.jsonl"
printf '"a"\n\n"b"\n' >"$work/blank.jsonl"
refuse jsonl_blank 1 'line 2: not a JSON string' "${TK[@]}" --tokenizer "$R" --jsonl --file "$work/blank.jsonl"
printf '"a" "b"\n' >"$work/two.jsonl"
refuse jsonl_trailing 1 'line 1: text after the string' "${TK[@]}" --tokenizer "$R" --jsonl --file "$work/two.jsonl"
printf '"\xe2\x82"\n' >"$work/badu.jsonl"
refuse jsonl_bad_utf8 1 'line 1: the text is not valid UTF-8 at byte offset 0' "${TK[@]}" --tokenizer "$R" --jsonl --file "$work/badu.jsonl"

# ---- finding the vocabulary ----------------------------------------------------------------------
mkdir -p "$work/repo/original" "$work/hfckpt" "$work/empty/original"
cp "$R" "$work/repo/o200k_base.tiktoken"
cp "$J" "$work/hfckpt/tokenizer.json"
expect find_root "$CHAT" "${TK[@]}" "$work/repo/original" --chat --text "What is 2 + 2?"
expect find_ckpt "$CHAT" "${TK[@]}" "$work/hfckpt" --chat --text "What is 2 + 2?"
expect find_env "$CHAT" env TIKTOKEN_ENCODINGS_BASE="$work/repo" "$GPTOSS_BIN" tokenize --chat --text "What is 2 + 2?"
refuse find_none 1 'no tokenizer found: looked for tokenizer.json and o200k_base.tiktoken in .*empty/original and in its repository root .*TIKTOKEN_ENCODINGS_BASE.*--tokenizer' \
  env -u TIKTOKEN_ENCODINGS_BASE "$GPTOSS_BIN" tokenize "$work/empty/original" --text a
refuse find_not_dir 1 'not a directory' "${TK[@]}" "$R" --text a

# ---- the corrupt-tokenizer matrix ------------------------------------------------------------------
C=$work/cases
mkdir -p "$C"
head -n 100000 "$R" >"$C/ranks_truncated_lines"
head -c 1800000 "$R" >"$C/ranks_truncated_midline"
sed '500s/^[^ ]*/!!!!/' "$R" >"$C/ranks_bad_base64"
sed '500s/ [0-9]*$/ 498/' "$R" >"$C/ranks_duplicate_rank"
awk 'NR==499{t=$1} NR==500{$1=t} {print}' "$R" >"$C/ranks_duplicate_token"
sed '500d' "$R" >"$C/ranks_gap"
sed '500s/ [0-9]*$/ 4x9/' "$R" >"$C/ranks_nonnumeric"
sed '500s/ [0-9]*$/ -499/' "$R" >"$C/ranks_negative"
sed '500s/ [0-9]*$/ 300000/' "$R" >"$C/ranks_special_range"
{ head -n 10 "$R"; head -c 1000000 /dev/zero | tr '\0' 'A'; echo " 10"; } >"$C/ranks_huge_line"
sed '500s/ / 1 /' "$R" >"$C/ranks_three_fields"
: >"$C/empty"
printf '\n\n  \n' >"$C/blank"
head -c 4096 "$GPTOSS_BIN" >"$C/binary"
printf '{ "model": ' >"$C/json_not_json"
head -c 8000000 "$J" >"$C/json_truncated"
printf '[]\n' >"$C/json_array"
{ cat "$J"; echo '}'; } >"$C/json_trailing"
printf '{"version": "1.0"}' >"$C/json_no_model"
sed '0,/"vocab": {/s//"vocab": [], "v": {/' "$J" >"$C/json_vocab_array"
sed '0,/"merges": \[/s//"merged": [/' "$J" >"$C/json_no_merges"
sed '0,/"!": 0,/s//"!": "0",/' "$J" >"$C/json_vocab_string"
sed '0,/{1,3}/s//{1,4}/' "$J" >"$C/json_other_regex"
sed '0,/"<|start|>"/s//"<|begin|>"/' "$J" >"$C/json_added_wrong"
awk '/"merges": \[/{m=NR} m && NR==m+1{a=$0; next} m && NR==m+2{print; print a; next} {print}' "$J" >"$C/json_merges_order"
awk '/"merges": \[/{print "    \"merges\": []"; skip=1; next} skip && /^    \]/{skip=0; next} !skip{print}' "$J" >"$C/json_merges_empty"
{ printf '{"a":'; head -c 100000 /dev/zero | tr '\0' '['; } >"$C/json_deep"
/usr/bin/python3 -c 'import sys; sys.stdout.write("{\"a\": [" + "0," * 17000000 + "0]}")' >"$C/json_too_many_values"
mkfifo "$C/fifo"
mkdir "$C/directory"
ln -s "$work/nonexistent" "$C/dangling_link"
n=0
for f in "$C"/* /dev/zero "$work/no_such_file"; do
  n=$((n + 1))
  name=$(basename "$f")
  refuse "corrupt:$name" 1 "$name" "${TK[@]}" --tokenizer "$f" --text "hi"
done
# the same through the search: a corrupt tokenizer.json next to the checkpoint is reported, not skipped
mkdir -p "$work/corruptckpt"
cp "$C/json_merges_order" "$work/corruptckpt/tokenizer.json"
refuse corrupt_found 1 'corruptckpt/tokenizer.json: model.merges\[1\] makes rank 256 after rank 257' "${TK[@]}" "$work/corruptckpt" --text hi
[ "$n" -ge 30 ] || bad "only $n corrupt cases"

echo "tok_cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
