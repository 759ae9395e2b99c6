// The tiktoken side of bench/bench_tokenizer.sh: encode_ordinary of npm tiktoken 1.0.22 (WASM)
// and js-tiktoken 1.0.21 on the same file, best and median MB/s of REPEAT runs, and the id count.
//   node bench_tokenizer.cjs DEPS_NODE_MODULES TEXT_FILE REPEAT [tiktoken|js-tiktoken]
'use strict';
const fs = require('fs');
const [deps, file, rep, only] = process.argv.slice(2);
const repeat = +rep || 5;
const buf = fs.readFileSync(file);
const text = buf.toString('utf8');
const mb = buf.length / 1e6;
function time(name, f, n) {
  const r = [];
  let ids = 0;
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    ids = f(text).length;
    r.push(mb / (Number(process.hrtime.bigint() - t) / 1e9));
  }
  r.sort((a, b) => a - b);
  console.log(`${name}: ${r[n - 1].toFixed(2)} MB/s best, ${r[n >> 1].toFixed(2)} MB/s median of ${n}; ${ids} ids`);
  return r[n - 1];
}
if (only !== 'js-tiktoken') {
  const { get_encoding } = require(`${deps}/tiktoken/tiktoken.cjs`);
  const enc = get_encoding('o200k_base');
  time('tiktoken 1.0.22 (WASM) encode_ordinary', (s) => enc.encode_ordinary(s), repeat);
}
if (only !== 'tiktoken') {
  const { Tiktoken } = require(`${deps}/js-tiktoken/dist/lite.cjs`);
  const ranks = require(`${deps}/js-tiktoken/dist/ranks/o200k_base.cjs`);
  const js = new Tiktoken(ranks.default || ranks);
  time('js-tiktoken 1.0.21 encode', (s) => js.encode(s, [], []), Math.min(repeat, 2));
}
