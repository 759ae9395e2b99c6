// Shared by the tokenizer tests (tests/tokenizer.cmake): the reference implementations from
// .deps/tok (scripts/setup.sh --test), running `gptoss-mpi tokenize`, a seeded generator, and
// the check/report helpers. A missing package is a failure, never a skip.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const env = (k) => {
  const v = process.env[k];
  if (!v) { console.error(`${k} is not set (run through ctest)`); process.exit(1); }
  return v;
};
const DEPS = env('TOK_DEPS'), BIN = env('GPTOSS_BIN'), RANKS = env('TOK_RANKS');

function need(rel) {
  const p = path.join(DEPS, rel);
  if (!fs.existsSync(p)) {
    console.error(`FAIL: ${p} is missing: run scripts/setup.sh --test (npm packages under .deps/tok)`);
    process.exit(1);
  }
  return require(p);
}

// tiktoken 1.0.22 (WASM) with its own copy of the o200k ranks, and js-tiktoken 1.0.21 with its own.
function references() {
  const tiktoken = need('tiktoken/tiktoken.cjs');
  const o200k = need('tiktoken/encoders/o200k_base.cjs');
  const js = need('js-tiktoken/dist/lite.cjs');
  const jsRanks = need('js-tiktoken/dist/ranks/o200k_base.cjs');
  const harmony = new tiktoken.Tiktoken(o200k.bpe_ranks, harmonySpecials(), o200k.pat_str);
  return { tiktoken, harmony, js: new js.Tiktoken(jsRanks.default || jsRanks), patStr: o200k.pat_str };
}

// o200k_harmony's special tokens, from openai-harmony's table (docs/clients.md).
function harmonySpecials() {
  const named = { 199998: '<|startoftext|>', 199999: '<|endoftext|>', 200002: '<|return|>', 200003: '<|constrain|>',
                  200005: '<|channel|>', 200006: '<|start|>', 200007: '<|end|>', 200008: '<|message|>',
                  200012: '<|call|>', 200018: '<|endofprompt|>' };
  const s = {};
  for (let id = 199998; id < 201088; id++) s[named[id] || `<|reserved_${id}|>`] = id;
  return s;
}

function tmpdir(tag) {
  const base = process.env.TMPDIR_BASE || os.tmpdir();
  return fs.mkdtempSync(path.join(base, `${tag}.`));
}

// Run the tool; returns {status, stdout, stderr}.
function run(args, opts = {}) {
  const r = spawnSync(BIN, args, { maxBuffer: 1 << 30, timeout: 300000, env: { ...process.env, ...(opts.env || {}) },
                                   input: opts.input });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8') };
}

// `tokenize --jsonl` over strings -> arrays of ids (throws with the tool's message on failure).
function encodeAll(strings, extra = [], opts = {}) {
  const dir = tmpdir('tok_jsonl');
  const f = path.join(dir, 'in.jsonl');
  fs.writeFileSync(f, strings.map((s) => JSON.stringify(s)).join('\n') + '\n');
  const r = run(['tokenize', ...extra, '--jsonl', '--file', f], opts);
  fs.rmSync(dir, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`tokenize --jsonl exited ${r.status}: ${r.stderr}`);
  const lines = r.stdout.split('\n');
  if (lines.pop() !== '' || lines.length !== strings.length) throw new Error(`tokenize --jsonl: ${lines.length} lines for ${strings.length} strings`);
  return lines.map((l) => JSON.parse(l));
}

function decodeAll(idLists, extra = []) {
  const dir = tmpdir('tok_jsonl');
  const f = path.join(dir, 'ids.jsonl');
  fs.writeFileSync(f, idLists.map((v) => JSON.stringify(v)).join('\n') + '\n');
  const r = run(['tokenize', ...extra, '--decode', '-', '--jsonl', '--file', f]);
  fs.rmSync(dir, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`tokenize --decode - --jsonl exited ${r.status}: ${r.stderr}`);
  const lines = r.stdout.split('\n');
  lines.pop();
  return lines.map((l) => JSON.parse(l));
}

// mulberry32: the same strings on every run.
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n) => Math.floor(next() * n);
  return { next, int, pick: (arr) => arr[int(arr.length)] };
}

const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

// Report helper: counts checks, prints the first failures with the string, exits 1 on any.
function checker(name) {
  let passed = 0, failed = 0;
  const show = (s) => JSON.stringify(s.length > 160 ? s.slice(0, 160) + '...' : s);
  return {
    ok(cond, what, s) {
      if (cond) { passed++; return; }
      failed++;
      if (failed <= 15) console.log(`FAIL ${what}${s !== undefined ? ': ' + show(s) : ''}`);
    },
    finish(extra) {
      if (extra) console.log(extra);
      console.log(`${name}: ${passed} passed, ${failed} failed`);
      process.exit(failed ? 1 : 0);
    },
  };
}

module.exports = { DEPS, BIN, RANKS, need, references, harmonySpecials, tmpdir, run, encodeAll, decodeAll, rng, same, checker };
