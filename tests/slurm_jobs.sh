#!/usr/bin/env bash
# slurm_jobs.sh MODE: one test of the batch scripts in slurm/ on the private cluster started by
# tests/slurm_cluster.sh (ctest fixture slurm_cluster; tests/slurm.cmake). Every job is submitted
# with `sbatch --wait` under `timeout`, and every test checks the job's files and log, not only
# the exit code (Slurm reports success when tasks fail to launch).
#
# Modes:
#   export_parity LAUNCH  tiny synth checkpoint, 4 tasks, srun or mpirun: exit 0, ONNX model,
#                         parity report (of the ONNX model; while parity --onnx is not in the
#                         build, of the job's 4-rank reference trace against a 1-rank trace),
#                         COMPLETED, no .partial, 4 ranks in every step's log
#   corrupt               truncated checkpoint: exit 1, the tool's error in the log, no output
#   parity_fail           parity against a trace of another checkpoint: exit 3, report kept,
#                         COMPLETED says "parity failed"
#   rank_failure          injected fault on rank 2 during the export's data phase (srun): exit 1,
#                         "rank 2: injected fault" in the log, no output
#   sigterm               SIGTERM to the batch shell (scancel --batch) during a long step: exit
#                         143, "STOPPED" + rerun hint in the log, temporary output removed, no rank left
#   time_limit            --time=1 with --signal=B:TERM@45 and a step that would run for minutes:
#                         stopped before the limit, no finished-looking output
#   requeue               SIGUSR1 (the scripts' time-limit warning, --signal=B:USR1@120) to the
#                         batch shell mid-export (throttled: GPTOSS_EXPORT_THROTTLE): the job
#                         stops the export, requeues itself, and the requeued run (same job id,
#                         log appended) continues with export --resume, verifying the pieces
#                         written before; its model is byte-identical to an uninterrupted export
#   sized_scripts         slurm/gpt-oss-{20b,120b}.sbatch equal to what slurm/update-recipes.sh
#                         writes from the plan of the real shapes (sparse checkpoints), and both
#                         submitted as dry runs
# Environment (from tests/slurm.cmake): GPTOSS_BIN, SLURM_ENV (written by slurm_cluster.sh up),
# SLURM_WORK, SLURM_SCRIPTS (the slurm/ directory), PY3, SYNTH_SPARSE.
# shellcheck disable=SC2317  # helpers called through check's eval
set -uo pipefail
mode=${1:?usage: slurm_jobs.sh MODE [ARG]}
arg=${2:-}
: "${GPTOSS_BIN:?}" "${SLURM_ENV:?}" "${SLURM_WORK:?}" "${SLURM_SCRIPTS:?}"
PY3=${PY3:-python3}
if [ ! -s "$SLURM_ENV" ]; then
  echo "FAIL: no test cluster ($SLURM_ENV missing): did slurm_cluster_up fail?"
  exit 1
fi
# shellcheck disable=SC1090
. "$SLURM_ENV"
# Open MPI refuses root without these; the jobs inherit them (sbatch --export=ALL)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
unset OMPI_MCA_rmaps_base_oversubscribe GPTOSS_FAULT

W=$SLURM_WORK/$mode${arg:+-$arg}
rm -rf "$W"; mkdir -p "$W"; cd "$W" || exit 1
GENERIC=$SLURM_SCRIPTS/gptoss-export-parity.sbatch

fail=0; n=0
check() { n=$((n + 1)); if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=$((fail + 1)); fi; }
finish() {
  echo "slurm_jobs $mode${arg:+ $arg}: $((n - fail)) passed, $fail failed"
  if [ "$fail" -eq 0 ]; then rm -rf "$W"; exit 0; fi
  echo "work directory kept: $W"
  exit 1
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# submit NAME TIMEOUT SBATCH_ARGS... -> JOB_ID, RC, LOG, ELAPSED; prints the log
submit_bg() {  # the same, in the background: sets SUB_PID; then wait_job NAME TIMEOUT
  local name=$1 t=$2; shift 2
  SUB_T0=$(now)
  timeout "$t" sbatch --wait --parsable -J "$name" --chdir="$W" "$@" >"$W/$name.id" 2>"$W/$name.sbatch.err" &
  SUB_PID=$!
}
wait_job() {
  local name=$1
  wait "$SUB_PID"; RC=$?
  ELAPSED=$(secs "$SUB_T0" "$(now)")
  JOB_ID=$(head -n 1 "$W/$name.id" 2>/dev/null | cut -d ';' -f 1)
  if [ "$RC" -eq 124 ] && [ -n "$JOB_ID" ]; then
    echo "sbatch --wait timed out: cancelling job $JOB_ID"
    scancel "$JOB_ID" 2>/dev/null
  fi
  LOG=$W/$name-$JOB_ID.out
  echo "job ${JOB_ID:-?} ($name): exit code $RC after $ELAPSED s"
  cat "$W/$name.sbatch.err"
  echo "---- $LOG"; cat "$LOG" 2>/dev/null; echo "----"
}
submit() { local name=$1 t=$2; submit_bg "$@"; wait_job "$name" "$t"; }

# no file left in the output tree (the job directory is removed when it holds nothing)
nothing_left() { [ -z "$(find "$W/out" -mindepth 1 2>/dev/null)" ]; }
# count "== open: CKPT (4 ranks)" lines: one per launched step, each seeing 4 ranks
ranks_seen() { grep -c "^== open: .* (4 ranks)" "$LOG"; }

synth_tiny() { "$GPTOSS_BIN" synth "$W/ck" --preset tiny -q || { echo "FAIL: synth"; exit 1; }; }

export GPTOSS_BIN GPTOSS_OUT=$W/out GPTOSS_PROGRESS=2

case $mode in
  export_parity)
    launch=${arg:-srun}
    synth_tiny
    steps="export run parity"   # the default: the ONNX model, the reference trace, the report
    GPTOSS_CKPT=$W/ck GPTOSS_LAUNCH=$launch \
      submit ep 150 -n 4 "$GENERIC"
    check "default steps: $steps" "grep -q 'steps: $steps;' '$LOG'"
    J=$W/out/ep-$JOB_ID
    check "sbatch --wait exit 0" "[ $RC -eq 0 ]"
    check "COMPLETED written, status ok" "grep -qx 'status: ok' '$J/COMPLETED'"
    check "COMPLETED: parity checked the published model" "grep -qx 'parity_checked: the published onnx/ model' '$J/COMPLETED'"
    check "no .partial left" "[ ! -e '$J/.partial' ]"
    check "model.onnx and its data" "[ -s '$J/onnx/onnx/model.onnx' ] && [ -s '$J/onnx/onnx/model.onnx.data' ]"
    check "client files beside it" "[ -s '$J/onnx/config.json' ] && [ -s '$J/onnx/genai_config.json' ] && [ -s '$J/onnx/generation_config.json' ]"
    check "ONNX graph: a decoder with a KV cache -> logits, present + routing outputs" "'$PY3' -c \"
import onnx, sys
m = onnx.load('$J/onnx/onnx/model.onnx', load_external_data=False)
ins = [i.name for i in m.graph.input]
assert ins[:3] == ['input_ids', 'attention_mask', 'position_ids'] and 'past_key_values.3.value' in ins, ins
outs = [o.name for o in m.graph.output]
assert 'logits' in outs and 'present.3.key' in outs, outs
assert 'routing.3.topk_indices' in outs, outs   # --expose routing,hidden for parity
\""
    check "plan in the output and the log" "[ -s '$J/plan.txt' ] && grep -q '4 ranks = ' '$LOG'"
    # export and run print "== open: CKPT (4 ranks)"; parity records its rank count in the report
    nopen=$(grep -o 'export\|run' <<<"$steps" | wc -l)
    check "export/run ran on 4 ranks ($nopen x '(4 ranks)')" "[ \"\$(ranks_seen)\" -eq $nopen ]"
    check "export: 4 ranks wrote data" "[ \"\$(grep -cE '^ +rank [0-3]: wrote' '$LOG')\" -eq 4 ]"
    check "launcher in the log" "grep -q 'launch: $launch' '$LOG'"
    check "parity report, summary and chart" "[ -s '$J/parity.h5' ] && [ -s '$J/parity.md' ] && [ -s '$J/parity.svg' ]"
    check "parity report: verdict pass, 4 ranks" "'$PY3' -c \"
import h5py
a = h5py.File('$J/parity.h5', 'r').attrs
assert a['verdict'] == 'pass' and int(a['n_ranks']) == 4, dict(a)
\""
    check "parity PASS in the summary and the log" "grep -q 'Routing parity: PASS' '$J/parity.md' && grep -q '^parity: PASS' '$LOG'"
    check "parity against the job's reference trace" "grep -q 'reference .*reference.h5' '$J/parity.md'"
    check "reference trace: 8 tokens, 4 layers" "'$PY3' -c \"
import h5py
f = h5py.File('$J/reference.h5', 'r')
assert f['input_ids'].shape == (8,), f['input_ids'].shape
assert sorted(f['layers'].keys()) == ['0', '1', '2', '3']
\""
    check "parity of the ONNX model in ONNX Runtime" "grep -q 'candidate | ONNX Runtime .*model.onnx' '$J/parity.md'"
    check "parity drove the KV cache: a prefill, then decode steps" "grep -q 'candidate calls | prefill of positions 0-.*decode steps' '$J/parity.md'"
    check "DONE in the log" "grep -q 'gptoss-job: DONE (ok)' '$LOG'"
    ;;

  per_stage)
    # the 120b recipe's parity: GPTOSS_PARITY_ARGS=--per-stage (one-layer sub-models on the ranks
    # of their stage) against the job's reference trace, next to the full export
    synth_tiny
    GPTOSS_CKPT=$W/ck GPTOSS_LAUNCH=srun GPTOSS_PARITY_ARGS=--per-stage GPTOSS_STAGES=2 \
      submit ps 150 -n 4 "$GENERIC"
    J=$W/out/ps-$JOB_ID
    check "sbatch --wait exit 0" "[ $RC -eq 0 ]"
    check "COMPLETED written, status ok" "grep -qx 'status: ok' '$J/COMPLETED'"
    check "the full export written too" "[ -s '$J/onnx/onnx/model.onnx' ] && [ -s '$J/onnx/onnx/model.onnx.data' ]"
    check "COMPLETED says what parity checked" "grep -q '^parity_checked: one-layer sub-models' '$J/COMPLETED'"
    check "parity ran --per-stage with the job's reference, not --onnx" "grep -E 'parity .*--per-stage' '$LOG' | grep -q -- '--reference' && ! grep -E 'parity .*--per-stage' '$LOG' | grep -q -- '--onnx'"
    check "parity report: verdict pass, 4 ranks" "'$PY3' -c \"
import h5py
a = h5py.File('$J/parity.h5', 'r').attrs
assert a['verdict'] == 'pass' and int(a['n_ranks']) == 4, dict(a)
\""
    check "parity PASS in the summary and the log" "grep -q 'Routing parity: PASS' '$J/parity.md' && grep -q '^parity: PASS' '$LOG'"
    check "DONE in the log" "grep -q 'gptoss-job: DONE (ok)' '$LOG'"
    ;;

  corrupt)
    synth_tiny
    truncate -s -4096 "$W/ck/model.safetensors"
    GPTOSS_CKPT=$W/ck GPTOSS_LAUNCH=srun submit corrupt 120 -n 4 "$GENERIC"
    check "exit code 1" "[ $RC -eq 1 ]"
    check "the tool's error, naming the file, in the log" "grep -q 'gptoss-mpi: error: .*model.safetensors' '$LOG'"
    check "FAILED in the log" "grep -q 'FAILED: job' '$LOG'"
    check "no output left" "nothing_left"
    ;;

  parity_fail)
    # a candidate that computes something else (another checkpoint): parity fails, exit 3, the
    # report is kept as the evidence and COMPLETED says so
    synth_tiny
    "$GPTOSS_BIN" synth "$W/other" --preset tiny --seed 5 -q || { echo "FAIL: synth"; exit 1; }
    "$GPTOSS_BIN" run "$W/other" --prompt-ids 12,345,67,89,250,401,5,77 --max-tokens 0 \
      --trace "$W/other.h5" -q >/dev/null || { echo "FAIL: run"; exit 1; }
    GPTOSS_CKPT=$W/ck GPTOSS_LAUNCH=srun GPTOSS_STEPS="run parity" \
      GPTOSS_PARITY_ARGS="--candidate $W/other.h5" submit pfail 120 -n 4 "$GENERIC"
    J=$W/out/pfail-$JOB_ID
    check "exit code 3" "[ $RC -eq 3 ]"
    check "parity FAILED in the log" "grep -q 'parity FAILED (exit 3)' '$LOG'"
    check "report kept, summary says FAIL" "[ -s '$J/parity.h5' ] && grep -q 'Routing parity: FAIL' '$J/parity.md'"
    check "COMPLETED says parity failed" "grep -qx 'status: parity failed' '$J/COMPLETED' && grep -qx 'exit_code: 3' '$J/COMPLETED'"
    check "no .partial left" "[ ! -e '$J/.partial' ]"
    ;;

  rank_failure)
    synth_tiny
    GPTOSS_CKPT=$W/ck GPTOSS_LAUNCH=srun GPTOSS_FAULT=2:export-data submit rankfail 120 -n 4 "$GENERIC"
    check "exit code 1" "[ $RC -eq 1 ]"
    check "rank 2's error once, from rank 0" "[ \"\$(grep -c 'gptoss-mpi: error: rank 2: injected fault' '$LOG')\" -eq 1 ]"
    check "the step ran on 4 ranks" "[ \"\$(ranks_seen)\" -eq 1 ]"
    check "step failure reported" "grep -q 'step export failed with exit code 1' '$LOG'"
    check "no output left" "nothing_left"
    ;;

  sigterm | time_limit)
    synth_tiny
    # export (fast), then a run step that would generate tokens for minutes
    export GPTOSS_CKPT=$W/ck GPTOSS_STEPS="export run" GPTOSS_MAX_TOKENS=100000
    if [ "$mode" = sigterm ]; then
      GPTOSS_LAUNCH=mpirun submit_bg term 120 -n 4 "$GENERIC"
      # wait for the run step to be decoding, with the export finished under .partial
      seen=""
      for _ in $(seq 1 120); do
        id=$(head -n 1 "$W/term.id" 2>/dev/null | cut -d ';' -f 1)
        if [ -n "$id" ] && grep -q '^== decode' "$W/term-$id.out" 2>/dev/null; then
          seen=$(find "$W/out/term-$id/.partial" -mindepth 1 -maxdepth 1 -printf '%f ' 2>/dev/null)
          break
        fi
        sleep 0.5
      done
      echo "temporary output while running: $seen"
      check "export finished under .partial before the signal" "grep -q onnx <<<'$seen'"
      scancel --batch --signal=TERM "$id"
      wait_job term 120
      sig_rx="received SIGTERM"
    else
      GPTOSS_LAUNCH=srun submit tl 170 -n 4 --time=1 --signal=B:TERM@45 "$GENERIC"
      sig_rx="received SIGTERM"
      # the controller checks limits every 30 s: the signal due at 15 s comes by 45 s, well
      # before Slurm's own SIGTERM + SIGKILL at the 60 s limit
      check "stopped by --signal before the time limit (${ELAPSED} s < 60 s)" "awk -v e='$ELAPSED' 'BEGIN { exit !(e < 60) }'"
    fi
    check "exit code 143" "[ $RC -eq 143 ]"
    check "signal noticed in the log" "grep -q '$sig_rx' '$LOG'"
    if [ "$mode" = sigterm ]; then
      check "the running step was stopped" "grep -q \"step 'run' stopped after\" '$LOG'"
    else
      # Slurm's controller sends the --signal when its periodic limit check sees the job within
      # 45 s of its end: seen from 1 s to 45 s after the start here, so the signal may find the
      # export or the run step running. Whichever it was must be the one stopped and named.
      step=$(sed -n "s/.*STOPPED: job .* in step '\([a-z]*\)'\..*/\1/p" "$LOG" | head -n 1)
      echo "signalled during step: ${step:-?}"
      case $step in
        export | run) check "the running step ($step) was stopped" "grep -q \"during $step; stopping\" '$LOG' && grep -q \"step '$step' stopped after\" '$LOG'" ;;
        none) check "signalled between steps, nothing running" "grep -q 'during no step; stopping' '$LOG'" ;;
        *) check "the STOPPED line names the step" "false" ;;
      esac
    fi
    check "clear STOPPED message" "grep -q 'STOPPED: job $JOB_ID was stopped by SIGTERM' '$LOG'"
    check "temporary output removed (said and done)" "grep -q 'temporary output .* was removed' '$LOG'"
    check "rerun hint" "grep -q 'to rerun:' '$LOG'"
    check "no output left (no COMPLETED, no onnx, no .partial)" "nothing_left"
    sleep 1
    check "no rank of the job left running" "! pgrep -f -- '$W/ck' >/dev/null"
    ;;

  requeue)
    synth_tiny
    # the reference: the same export, uninterrupted, outside Slurm (bytes do not depend on the
    # rank count)
    mpirun --oversubscribe -np 2 "$GPTOSS_BIN" export "$W/ck" --output "$W/ref" -q || { echo "FAIL: reference export"; exit 1; }
    export GPTOSS_CKPT=$W/ck GPTOSS_STEPS=export GPTOSS_LAUNCH=srun
    id=$(GPTOSS_EXPORT_THROTTLE=250 sbatch --parsable -J rq --chdir="$W" -n 4 "$GENERIC" 2>"$W/rq.sbatch.err" | cut -d ';' -f 1)
    cat "$W/rq.sbatch.err"
    [ -n "$id" ] || { echo "FAIL: sbatch"; exit 1; }
    J=$W/out/rq-$id
    # wait until the export has journaled some pieces, then the time-limit warning
    lines=0
    for _ in $(seq 1 240); do
      lines=$(cat "$J"/.partial/onnx.partial/journal.* 2>/dev/null | wc -l)
      [ "$lines" -ge 40 ] && break
      sleep 0.25
    done
    echo "pieces journaled before the signal: $lines"
    check "export journaling pieces before the signal" "[ $lines -ge 40 ]"
    t0=$(now)
    scancel --batch --signal=USR1 "$id"
    # the job requeues itself and runs again (same id) after the credential lifetime
    state=""; restarts=0
    for _ in $(seq 1 600); do
      info=$(scontrol show job "$id" 2>/dev/null)
      state=$(sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' <<<"$info" | head -n 1)
      restarts=$(sed -n 's/.*Restarts=\([0-9]*\).*/\1/p' <<<"$info" | head -n 1)
      case $state in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY)
        [ "${restarts:-0}" -ge 1 ] && break ;;
      esac
      sleep 0.5
    done
    echo "job $id: $state after $(secs "$t0" "$(now)") s from the signal, $restarts restart(s)"
    LOG=$W/rq-$id.out
    echo "---- $LOG"; cat "$LOG"; echo "----"
    check "requeued once, then COMPLETED" "[ '$state' = COMPLETED ] && [ '${restarts:-0}' -eq 1 ]"
    check "the warning noticed, the step stopped, the job requeued" "grep -q 'received SIGUSR1' '$LOG' && grep -q \"step 'export' stopped after\" '$LOG' && grep -q 'REQUEUED: job $id' '$LOG'"
    check "the tool said the export is kept for --resume" "grep -q 'rerun with --resume' '$LOG'"
    check "both runs in the one log (--open-mode=append)" "grep -q 'requeued run 1 of job $id' '$LOG'"
    check "export --resume in the command" "[ \"\$(grep -c 'step export: .* export .* --resume' '$LOG')\" -eq 2 ]"
    verified=$(sed -n 's/.*pieces: \([0-9]*\) verified.*/\1/p' "$LOG" | tail -n 1)
    echo "pieces verified by the requeued run: ${verified:-none}"
    check "the requeued run verified the pieces written before (${verified:-0} >= $lines)" "[ '${verified:-0}' -ge $lines ]"
    check "DONE, COMPLETED written" "grep -q 'gptoss-job: DONE (ok)' '$LOG' && grep -qx 'status: ok' '$J/COMPLETED'"
    check "no .partial, no bookkeeping left" "[ ! -e '$J/.partial' ] && [ ! -e '$J/.job' ] && [ ! -e '$J/.steps-done' ] && [ ! -e '$J/onnx.partial' ]"
    check "model byte-identical to an uninterrupted export (every file)" "diff -r '$W/ref' '$J/onnx'"
    check "same files as the reference" "[ \"\$(cd '$W/ref' && find . -type f | sort)\" = \"\$(cd '$J/onnx' && find . -type f | sort)\" ]"
    ;;

  sized_scripts)
    : "${SYNTH_SPARSE:?}"
    # the recipes, rewritten from the plan of the real shapes, must equal the committed ones
    SYNTH_SPARSE=$SYNTH_SPARSE bash "$SLURM_SCRIPTS/update-recipes.sh" --out "$W/gen"
    for name in gpt-oss-20b gpt-oss-120b; do
      script=$SLURM_SCRIPTS/$name.sbatch
      sed -n 's/^#SBATCH --\(nodes\|ntasks-per-node\|ntasks\|mem-per-cpu\|time\)=/  &/p' "$W/gen/$name.sbatch"
      check "$name: equal to what slurm/update-recipes.sh writes from the plan (else run it)" \
        "diff -u '$script' '$W/gen/$name.sbatch'"
      check "$name: plan quoted, resources set" "grep -q '^#   plan: ' '$script' && grep -q '^#SBATCH --mem-per-cpu=' '$script'"
      preset=${name#gpt-oss-}
      "$SYNTH_SPARSE" "$W/$name" "$preset" original || { echo "FAIL: synth_sparse $preset"; exit 1; }
    done
    if command -v shellcheck >/dev/null 2>&1; then
      check "shellcheck slurm/*.sh, *.sbatch and tests/slurm*.sh" \
        "shellcheck '$SLURM_SCRIPTS'/*.sbatch '$SLURM_SCRIPTS'/*.sh '$SLURM_SCRIPTS/../tests/slurm_cluster.sh' '$SLURM_SCRIPTS/../tests/slurm_jobs.sh'"
    fi
    # dry runs through Slurm: the 20B script as it is (1 node, 8 tasks, 3G each); the 120B one on
    # this single node (-N 1, 16 tasks; the test node declares 16 CPUs and 128 GiB)
    GPTOSS_CKPT=$W/gpt-oss-20b GPTOSS_DRY_RUN=1 submit dry20 90 "$SLURM_SCRIPTS/gpt-oss-20b.sbatch"
    check "20b dry run: exit 0" "[ $RC -eq 0 ]"
    check "20b dry run: generic script found and run" "grep -q 'gptoss-job: job $JOB_ID (dry20)' '$LOG'"
    check "20b dry run: plan with Slurm's memory per rank" "grep -q 'plan .* --ranks 8 --stages 8 --tokens 8 --mem-per-rank 3072M' '$LOG' && grep -q '^plan: 8 ranks = 8 stages x 1 expert groups' '$LOG'"
    check "20b dry run: no rank over its memory" "! grep -q 'more than --mem-per-rank' '$LOG'"
    check "20b dry run: export command" "grep -q 'step export: srun --mpi=pmix --kill-on-bad-exit=1 -n 8 .* export .* --stages 8' '$LOG'"
    GPTOSS_CKPT=$W/gpt-oss-120b GPTOSS_DRY_RUN=1 GPTOSS_LAUNCH=mpirun submit dry120 90 -N 1 --ntasks-per-node=16 "$SLURM_SCRIPTS/gpt-oss-120b.sbatch"
    check "120b dry run: exit 0" "[ $RC -eq 0 ]"
    check "120b dry run: plan 16 ranks = 8 x 2 with 6G per rank" "grep -q 'plan .* --ranks 16 --stages 8 --tokens 8 --mem-per-rank 6144M' '$LOG' && grep -q '^plan: 16 ranks = 8 stages x 2 expert groups' '$LOG'"
    check "120b dry run: no rank over its memory" "! grep -q 'more than --mem-per-rank' '$LOG'"
    check "120b dry run: parity per stage against the reference" "grep -q 'step parity: mpirun -np 16 .* parity .* --reference .* --per-stage' '$LOG' && ! grep 'step parity:' '$LOG' | grep -q -- '--onnx '"
    check "dry runs leave no output" "nothing_left"
    ;;

  *)
    echo "slurm_jobs.sh: unknown mode $mode" >&2
    exit 2 ;;
esac
finish
