// tok_unicode: every code point of planes 0-3 and 14 (every 97th of the others, which are
// unassigned or private use) in contexts whose ids depend on its character class (letter,
// lower/upper, mark, number, whitespace, other) and on the contraction rule: our ids ==
// tiktoken 1.0.22's. This is what holds our PCRE2 classes (Unicode 14 tables + the Unicode 16
// additions of tokenizer/tok_unicode16.h, explicit White_Space) to tiktoken's Rust regex.
'use strict';
const c = require('./tok_common.cjs');
const { harmony } = c.references();
const chk = c.checker('tok_unicode');

const ctx = (ch) => `x${ch}'ll 1${ch}2345 ${ch}'ll\n${ch} \n ${ch}  xA${ch}b${ch}'S ${ch}${ch}\n\n`;
const strings = [], spans = [];
let cur = '', first = -1, count = 0;
for (let cp = 0; cp <= 0x10ffff; cp++) {
  if (cp >= 0xd800 && cp <= 0xdfff) continue;
  const plane = cp >> 16;
  if (!(plane <= 3 || plane === 14) && cp % 97 !== 0) continue;
  if (first < 0) first = cp;
  cur += ctx(String.fromCodePoint(cp));
  count++;
  if (count % 128 === 0) { strings.push(cur); spans.push([first, cp]); cur = ''; first = -1; }
}
if (cur) { strings.push(cur); spans.push([first, 0x10ffff]); }

const t0 = Date.now();
const ours = c.encodeAll(strings, ['--tokenizer', c.RANKS]);
const t1 = Date.now();
let bytes = 0, failedSpans = 0;
for (let i = 0; i < strings.length; i++) {
  bytes += Buffer.byteLength(strings[i]);
  const ref = Array.from(harmony.encode_ordinary(strings[i]));
  if (c.same(ours[i], ref)) { chk.ok(true); continue; }
  // name the code points: each of the span alone (the first few failing spans only)
  if (++failedSpans > 5) { chk.ok(false, `code points U+${spans[i][0].toString(16)}..U+${spans[i][1].toString(16)}`); continue; }
  const one = [];
  for (let cp = spans[i][0]; cp <= spans[i][1]; cp++) if (cp < 0xd800 || cp > 0xdfff) one.push(cp);
  const got = c.encodeAll(one.map((cp) => ctx(String.fromCodePoint(cp))), ['--tokenizer', c.RANKS]);
  one.forEach((cp, k) => {
    const s = ctx(String.fromCodePoint(cp));
    chk.ok(c.same(got[k], Array.from(harmony.encode_ordinary(s))), `U+${cp.toString(16).toUpperCase()}: ours != tiktoken`, s);
  });
}
chk.finish(`tok_unicode: ${count} code points in ${strings.length} strings (${(bytes / 1e6).toFixed(1)} MB), ours ${t1 - t0} ms, ` +
           `tiktoken ${Date.now() - t1} ms`);
