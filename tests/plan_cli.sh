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
# --routing: a trace's selected experts replace the expectation (golden.h5:/fp32 is a trace of
# 24 positions; 16 experts, top-4: 8 of a group's 8 expected)
json=$("$bin" plan "$golden/original" --ranks 2 --stages 1 --tokens 24 --max-seq 24 --per-stage --json); rc=$?
rjson=$("$bin" plan "$golden/original" --ranks 2 --stages 1 --tokens 24 --max-seq 24 --per-stage --json \
        --routing "$golden/golden.h5:/fp32" 2>/tmp/plan_err.$$); rc2=$?
check "routing exit 0, no warning" "[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ ! -s /tmp/plan_err.$$ ]"
check "routing counted" "/usr/bin/python3 - \"\$json\" \"\$rjson\" '$golden' <<'PY'
import json, sys, h5py
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert b['routing_positions'] == 24 and b['routing_layers'] == 4 and 'routing' not in a
cfg = json.load(open(sys.argv[3] + '/original/config.json'))
D, I = cfg['hidden_size'], cfg['intermediate_size']
# a layer's experts on a rank cost every scale and bias, plus per selected expert its MXFP4
# blocks (mlp1 + mlp2) and the folios around them (PLAN_EXPERT_EXTRA_RESIDENT, 2 MiB), at most
# every byte (at case-a's widths that cap is reached with one expert: the counting itself is
# checked at 120b widths in test_plan)
blocks, extra = (2 * I * D + D * I) // 2, 2 << 20
expert = blocks + 2 * I * D // 32 + D * I // 32 + 2 * (2 * I + D)   # + scales (1 B / 32) + bf16 biases
f = h5py.File(sys.argv[3] + '/golden.h5')
def read(n, sel):
    return min(n * expert, n * (expert - blocks) + sel * (blocks + extra))
for ra, rb in zip(a['per_rank'], b['per_rank']):
    lo, n = rb['expert0'], rb['n_experts']
    sel = [len({int(e) for e in f['fp32/layers/%d/topk_indices' % l][:].ravel() if lo <= e < lo + n})
           for l in range(4)]
    assert ra['resident_bytes'] - rb['resident_bytes'] == sum(read(n, n) - read(n, k) for k in sel), (ra['rank'], sel)
    assert rb['peak_bytes'] == rb['resident_bytes'] + rb['scratch_bytes'] + rb['kv_bytes'] + rb['base_bytes']
    # rank 0 holds the reference trace: [T] ids, [T, V] logits, two [T, D], per layer 12 tensors
    E, K, V = cfg['num_experts'], cfg['experts_per_token'], cfg['vocab_size']
    H, Dh, KV = cfg['num_attention_heads'], cfg['head_dim'], cfg['num_key_value_heads']
    tr = 4 * 24 * (1 + 2 * D + V + 4 * (E + 3 * K + 4 * D + Dh * (H + 2 * KV) + H * Dh + 3 * K * I))
    # and, with 2 expert groups, the leader receives the other group's mlp1 + SwiGLU rows of a
    # call (24 tokens x K); the other rank of the last stage keeps the logits of its vocabulary
    # rows (one chunk of 512, on one of the two ranks) for the call's other 23 tokens
    add = rb['per_stage']['forward_bytes'] - rb['peak_bytes']
    assert add == (tr + 4 * 24 * K * 3 * I if rb['rank'] == 0 else 4 * 23 * V), (rb['rank'], add)
    assert rb['per_stage']['forward_anon_bytes'] == rb['anon_bytes'] + add
    assert rb['anon_bytes'] == rb['scratch_bytes'] + rb['kv_bytes'] + (5 << 20)
    assert all(k >= 1 for k in sel) and ra['mapped_expert_bytes'] == 4 * n * expert, (sel, ra['mapped_expert_bytes'])
PY"
/usr/bin/python3 -c "
import h5py, shutil, sys
shutil.copy(sys.argv[1] + '/golden.h5', sys.argv[2])
f = h5py.File(sys.argv[2], 'r+'); d = f['fp32/layers/1/topk_indices']; a = d[:]; a[2, 1] = 99; d[...] = a" \
  "$golden" /tmp/plan_bad.$$.h5
"$bin" plan "$golden/original" --ranks 2 --tokens 24 --max-seq 24 --routing /tmp/plan_bad.$$.h5:/fp32 >/dev/null 2>/tmp/plan_err.$$; rc=$?
check "routing: bad expert id exit 2, one line naming layer and position" "[ $rc -eq 2 ] && [ \$(wc -l </tmp/plan_err.$$) -eq 1 ] && grep -q 'layer 1, position 2 selects expert 99' /tmp/plan_err.$$"
"$bin" plan "$golden/original" --ranks 2 --routing /nonexistent.h5 >/dev/null 2>/tmp/plan_err.$$; rc=$?
check "routing: missing trace exit 1 naming it" "[ $rc -eq 1 ] && grep -q nonexistent.h5 /tmp/plan_err.$$"
rm -f /tmp/plan_bad.$$.h5
"$bin" plan /nonexistent --ranks 2 >/dev/null 2>&1; rc=$?
check "missing checkpoint: exit 1" "[ $rc -eq 1 ]"
rm -f /tmp/plan_err.$$
echo "plan_cli: $((n-fail)) passed, $fail failed"
[ $fail -eq 0 ]
