#!/usr/bin/env bash
# plan on the command line: table, JSON, --mem-per-rank warning, usage errors (exit 2).
set -u
bin=$1; golden=$2
fail=0; n=0
check() { n=$((n+1)); if ! eval "$2"; then echo "FAIL: $1"; fail=$((fail+1)); fi; }
out=$("$bin" plan "$golden/original" --ranks 4 --stages 2 2>/tmp/plan_err.$$); rc=$?
check "table exit 0" "[ $rc -eq 0 ]"
check "table header" "grep -q '4 ranks = 2 stages x 2 expert groups' <<<\"\$out\""
json=$("$bin" plan "$golden/original" --ranks 3 --json); rc=$?
check "json exit 0" "[ $rc -eq 0 ]"
check "json parses" "/usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d[\"ranks\"]==3 and len(d[\"per_rank\"])==3' \"\$json\""
"$bin" plan "$golden/original" --ranks 2 --mem-per-rank 1K >/dev/null 2>/tmp/plan_err.$$; rc=$?
check "mem warning exit 0" "[ $rc -eq 0 ]"
check "mem warning text" "grep -q 'more than --mem-per-rank' /tmp/plan_err.$$"
"$bin" plan "$golden/original" --ranks 6 --stages 4 >/dev/null 2>/tmp/plan_err.$$; rc=$?
check "stages not dividing ranks: exit 2" "[ $rc -eq 2 ]"
check "one error line" "[ \$(wc -l </tmp/plan_err.$$) -eq 1 ]"
"$bin" plan "$golden/original" >/dev/null 2>&1; rc=$?
check "missing --ranks: exit 2" "[ $rc -eq 2 ]"
# --per-stage: the table, JSON per rank, a budget below a rank is an error naming it
out=$("$bin" plan "$golden/original" --ranks 4 --stages 1 --tokens 8 --per-stage 2>/tmp/plan_err.$$); rc=$?
check "per-stage table exit 0" "[ $rc -eq 0 ]"
check "per-stage table" "grep -q 'per-stage parity: 4 layers' <<<\"\$out\""
json=$("$bin" plan "$golden/original" --ranks 4 --stages 1 --tokens 8 --per-stage --json); rc=$?
check "per-stage json" "/usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1]); p=[x[\"per_stage\"] for x in d[\"per_rank\"]]; assert [x[\"layers\"] for x in p]==[1,1,1,1] and p[3][\"head\"] and all(x[\"peak_bytes\"]==max(x[\"forward_bytes\"],x[\"ort_bytes\"]) for x in p)' \"\$json\""
"$bin" plan "$golden/original" --ranks 2 --tokens 8 --per-stage --mem-per-rank 1K >/dev/null 2>/tmp/plan_err.$$; rc=$?
check "per-stage over budget: exit 1" "[ $rc -eq 1 ]"
check "per-stage over budget: one error naming rank 0" "[ \$(wc -l </tmp/plan_err.$$) -eq 1 ] && grep -q 'rank 0 would need' /tmp/plan_err.$$"
"$bin" plan "$golden/original" --ranks 2 --layers 2 >/dev/null 2>&1; rc=$?
check "--layers without --per-stage: exit 2" "[ $rc -eq 2 ]"
"$bin" plan "$golden/original" --ranks 2 --per-stage --layers 5 >/dev/null 2>&1; rc=$?
check "--layers above the checkpoint's: exit 2" "[ $rc -eq 2 ]"
"$bin" plan /nonexistent --ranks 2 >/dev/null 2>&1; rc=$?
check "missing checkpoint: exit 1" "[ $rc -eq 1 ]"
rm -f /tmp/plan_err.$$
echo "plan_cli: $((n-fail)) passed, $fail failed"
[ $fail -eq 0 ]
