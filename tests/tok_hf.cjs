// tok_hf: the Hugging Face files our writer makes from the ranks file (tok_hf_write_dir, run
// through tests/tok_tool), checked independently:
//   - tokenizer.json == what transformers' TikTokenConverter makes, re-implemented below from
//     the ranks file (vocab, merges in order), with tiktoken's o200k pattern and the specials;
//   - `tokenize --tokenizer tokenizer.json` == `--tokenizer o200k_base.tiktoken` == tiktoken on
//     the corpus; tokenizers.js 0.2.0 (transformers.js's tokenizer) on our tokenizer.json ==
//     tiktoken where JavaScript regexes can agree (tok_corpus_gen.cjs);
//   - the chat template in tokenizer_config.json, rendered by @huggingface/jinja 0.5.11 (what
//     transformers.js's apply_chat_template runs) == tok_chat_text, and its tokens (tiktoken
//     with specials; tokenizers.js) == `tokenize --chat` for several conversations.
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const c = require('./tok_common.cjs');
const gen = require('./tok_corpus_gen.cjs');
const { harmony, patStr } = c.references();
const { Tokenizer } = c.need('@huggingface/tokenizers/dist/tokenizers.cjs');
const { Template } = c.need('@huggingface/jinja/dist/index.cjs');
const chk = c.checker('tok_hf');

const tool = (args) => {
  const r = spawnSync(process.env.TOK_TOOL, args, { maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`tok_tool ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.toString('utf8');
};
const dir = c.tmpdir('tok_hf');
tool(['write-hf', c.RANKS, dir]);
const tj = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
const tc = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));

/* ---- TikTokenConverter, from the ranks file ---------------------------------------------------- */
const byteToUni = (() => {
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n); n++; }
  const m = new Array(256);
  bs.forEach((b, i) => { m[b] = String.fromCodePoint(cs[i]); });
  return m;
})();
const spell = (buf) => Array.from(buf, (b) => byteToUni[b]).join('');
const ranks = new Map();                  // latin1 string of the bytes -> rank
const tokens = [];
for (const line of fs.readFileSync(c.RANKS, 'utf8').split('\n')) {
  if (!line) continue;
  const [b64, r] = line.split(' ');
  const buf = Buffer.from(b64, 'base64');
  ranks.set(buf.toString('latin1'), +r);
  tokens[+r] = buf;
}
const vocab = {}, merges = [];
tokens.forEach((tokb, rank) => {
  vocab[spell(tokb)] = rank;
  if (tokb.length === 1) return;
  const local = [];
  for (let i = 1; i < tokb.length; i++) {
    const l = tokb.subarray(0, i), r = tokb.subarray(i);
    const rl = ranks.get(l.toString('latin1')), rr = ranks.get(r.toString('latin1'));
    if (rl !== undefined && rr !== undefined) local.push([rl, rr, l, r]);
  }
  local.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (const [, , l, r] of local) merges.push([spell(l), spell(r)]);
});
const m = tj.model;
chk.ok(m.type === 'BPE' && m.ignore_merges === true && m.byte_fallback === false && m.fuse_unk === false, 'model flags');
const vk = Object.keys(m.vocab);
chk.ok(vk.length === tokens.length && vk.every((k) => vocab[k] === m.vocab[k]), `vocab: ${vk.length} entries`);
chk.ok(m.merges.length === merges.length, `merges: ours ${m.merges.length}, TikTokenConverter ${merges.length}`);
let firstBad = m.merges.findIndex((x, i) => !merges[i] || x[0] !== merges[i][0] || x[1] !== merges[i][1]);
chk.ok(firstBad < 0, `merge ${firstBad}: ours ${JSON.stringify(m.merges[firstBad])}, converter ${JSON.stringify(merges[firstBad])}`);
const split = tj.pre_tokenizer.pretokenizers[0], bl = tj.pre_tokenizer.pretokenizers[1];
chk.ok(split.type === 'Split' && split.pattern.Regex === patStr && split.behavior === 'Isolated', 'Split = tiktoken\'s o200k pattern');
chk.ok(bl.type === 'ByteLevel' && bl.use_regex === false && bl.add_prefix_space === false, 'ByteLevel(use_regex=false)');
const specials = c.harmonySpecials();
chk.ok(tj.added_tokens.length === 1090 && tj.added_tokens.every((a) => specials[a.content] === a.id && a.special),
       'added tokens = the 1,090 harmony specials');
chk.ok(Object.entries(tc.added_tokens_decoder).every(([id, a]) => specials[a.content] === +id) &&
       tc.eos_token === '<|return|>' && tc.bos_token === '<|startoftext|>' && tc.pad_token === '<|endoftext|>',
       'tokenizer_config.json specials');

/* ---- ids through tokenizer.json --------------------------------------------------------------- */
const corpus = gen.build();
const jsonPath = path.join(dir, 'tokenizer.json');
const viaJson = c.encodeAll(corpus, ['--tokenizer', jsonPath]);
const viaRanks = c.encodeAll(corpus, ['--tokenizer', c.RANKS]);
const hf = new Tokenizer(tj, tc);
let hfCompared = 0;
for (let i = 0; i < corpus.length; i++) {
  const s = corpus[i];
  const ref = Array.from(harmony.encode_ordinary(s));
  chk.ok(c.same(viaJson[i], viaRanks[i]) && c.same(viaJson[i], ref), `string ${i}: tokenizer.json ids != ranks ids / tiktoken`, s);
  if (gen.jsDiverges.test(s) || gen.longPiece.test(s) || s.includes('<|')) continue;   /* tokenizers.js parses specials in text */
  hfCompared++;
  const h = hf.encode(s, { add_special_tokens: false }).ids;
  chk.ok(c.same(h, ref), `string ${i}: tokenizers.js on our tokenizer.json != tiktoken`, s);
}

/* ---- the chat template ------------------------------------------------------------------------ */
chk.ok(tc.chat_template === tool(['template']), 'tokenizer_config.json chat_template == tok_chat_template()');
const tpl = new Template(tc.chat_template);
const chats = [
  { user: 'What is 2 + 2?' },
  { user: 'What is the capital of the largest country in the world?', system: 'Answer the user\'s questions like a robot.', reasoning: 'high' },
  { user: 'Résumé: 日本語で答えて 👩🏽‍💻', reasoning: 'low' },
  { user: '  leading and trailing spaces \n', system: '\nline one\r\nline two\t', reasoning: 'medium' },
  { user: 'tabs\tand\nnewlines\n\n', system: 'Be brief.' },
];
for (const ch of chats) {
  const messages = [];
  if (ch.system !== undefined) messages.push({ role: 'system', content: ch.system });
  messages.push({ role: 'user', content: ch.user });
  const vars = { messages, add_generation_prompt: true, bos_token: '<|startoftext|>', eos_token: '<|return|>' };
  if (ch.reasoning) vars.reasoning_effort = ch.reasoning;
  const rendered = tpl.render(vars);
  const args = [];
  if (ch.reasoning) args.push('-r', ch.reasoning);
  if (ch.system !== undefined) args.push('-s', ch.system);
  chk.ok(rendered === tool(['chat-text', ...args, ch.user]), `template rendering != tok_chat_text`, rendered);
  const targs = ['tokenize', '--tokenizer', c.RANKS, '--chat', '--text', ch.user];
  if (ch.reasoning) targs.push('--reasoning', ch.reasoning);
  if (ch.system !== undefined) targs.push('--system', ch.system);
  const r = c.run(targs);
  const ours = r.status === 0 ? r.stdout.trim().split(',').map(Number) : [];
  chk.ok(r.status === 0, `tokenize --chat: ${r.stderr}`);
  chk.ok(c.same(ours, Array.from(harmony.encode(rendered, 'all'))), 'tokenize --chat != tiktoken(rendered template)', rendered);
  chk.ok(c.same(ours, hf.encode(rendered, { add_special_tokens: false }).ids), 'tokenize --chat != tokenizers.js(rendered template)', rendered);
}
fs.rmSync(dir, { recursive: true, force: true });
chk.finish(`tok_hf: ${merges.length} merges, ${vk.length} vocab entries; ${corpus.length} strings through tokenizer.json, ` +
           `${hfCompared} through tokenizers.js; ${chats.length} conversations through the template`);
