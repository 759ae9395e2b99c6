// tok_corpus: `gptoss-mpi tokenize` against tiktoken 1.0.22 (WASM) and js-tiktoken 1.0.21 on a
// corpus generated with a fixed seed (tok_corpus_gen.cjs: hand-picked cases and a 1 MB text):
//   - our ids == tiktoken's encode_ordinary on every string (interpreted regex too);
//   - our ids == js-tiktoken's on every string without U+0085, U+FEFF or U+017F, where its
//     JavaScript regex differs from tiktoken's by design (JS \s has U+FEFF and lacks U+0085; JS
//     has no Unicode case folding of 's to 'ſ): those are counted and printed;
//   - decode(encode(s)) == s, and our decode of random ids == TextDecoder(tiktoken's bytes).
// js-tiktoken merges in O(n^2) JavaScript (3 s for a 3,000-letter word): pieces longer than
// 1,000 bytes are compared with tiktoken only.
'use strict';
const c = require('./tok_common.cjs');
const { harmony, js } = c.references();
const corpus = require('./tok_corpus_gen.cjs').build();
const r = c.rng(99);
const { int } = r;

/* ---- checks -------------------------------------------------------------------------------- */
const chk = c.checker('tok_corpus');
const { jsDiverges: trigger, longPiece } = require('./tok_corpus_gen.cjs');
const t0 = Date.now();
const ours = c.encodeAll(corpus, ['--tokenizer', c.RANKS]);
const t1 = Date.now();
const interp = c.encodeAll(corpus, ['--tokenizer', c.RANKS], { env: { GPTOSS_TOK_NO_JIT: '1' } });
let jsSkipped = 0, jsDiverged = 0, jsLong = 0, bytes = 0;
for (let i = 0; i < corpus.length; i++) {
  const s = corpus[i];
  bytes += Buffer.byteLength(s);
  const ref = Array.from(harmony.encode_ordinary(s));
  chk.ok(c.same(ours[i], ref), `string ${i}: ours (${ours[i].length} ids) != tiktoken (${ref.length} ids)`, s);
  chk.ok(c.same(interp[i], ours[i]), `string ${i}: interpreted regex != JIT`, s);
  if (longPiece.test(s)) { jsLong++; continue; }
  const jref = js.encode(s, [], []);
  if (trigger.test(s)) {
    jsSkipped++;
    if (!c.same(jref, ref)) jsDiverged++;
  } else {
    chk.ok(c.same(ours[i], jref), `string ${i}: ours != js-tiktoken`, s);
  }
}
// decode(encode(s)) == s
const back = c.decodeAll(ours, ['--tokenizer', c.RANKS]);
for (let i = 0; i < corpus.length; i++) chk.ok(back[i] === corpus[i], `string ${i}: decode(encode(s)) != s`, corpus[i]);
// random ids (tokens that cut characters, specials): ours == TextDecoder over tiktoken's bytes
const lists = [];
const dec = new TextDecoder('utf-8');
for (let i = 0; i < 500; i++) {
  const v = [];
  for (let k = 0, n = 1 + int(12); k < n; k++) v.push(int(8) === 0 ? 199998 + int(1090) : int(4) === 0 ? int(256) : int(199998));
  lists.push(v);
}
const texts = c.decodeAll(lists, ['--tokenizer', c.RANKS]);
for (let i = 0; i < lists.length; i++) {
  const want = dec.decode(harmony.decode(new Uint32Array(lists[i])));
  chk.ok(texts[i] === want, `ids ${JSON.stringify(lists[i])}: decoded text differs from TextDecoder(tiktoken)`);
}
chk.finish(`tok_corpus: ${corpus.length} strings, ${(bytes / 1e6).toFixed(2)} MB (the largest ${
  (Math.max(...corpus.map((s) => Buffer.byteLength(s))) / 1e6).toFixed(2)} MB); ours ${t1 - t0} ms; ` +
  `js-tiktoken compared on ${corpus.length - jsSkipped - jsLong} (${jsLong} with pieces over 1,000 bytes and ` +
  `${jsSkipped} with U+0085/U+FEFF/U+017F left to tiktoken; ` +
  `js-tiktoken differs from tiktoken on ${jsDiverged} of those)`);
