// The tokenizer test corpus, the same on every run (seeded): hand-picked cases (contractions in
// every case, whitespace before newlines, lone combining marks, specials typed as text, ...),
// generated prose in many scripts, emoji (skin tones, ZWJ sequences, flags), numbers of every
// length, code with tabs and CRLF, long words and runs, and a text of 1 MB.
'use strict';
const c = require('./tok_common.cjs');

function build() {
  const r = c.rng(12);
  const { pick, int } = r;
  const cp = String.fromCodePoint;
  const range = (a, b) => cp(a + int(b - a + 1));

  /* ---- material -------------------------------------------------------------------------------- */
  const EN = ('the of and to in is you that it he was for on are as with his they at be this have from or one had by ' +
    'word but not what all were we when your can said there use an each which she do how their if will up other about ' +
    'out many then them these so some her would make like him into time has look two more write go see number no way ' +
    'could people my than first water been call who oil its now find long down day did get come made may part ' +
    'tokenizer parity export checkpoint cluster rank MPI ONNX GPU Hello World THE QUICK Brown FOX iPhone McDonald ' +
    'O\'Neil don\'t isn\'t we\'ll they\'ve I\'m she\'d you\'re it\'s').split(' ');
  const WORLD = ['καλημέρα', 'κόσμε', 'Αθήνα', 'ΕΛΛΑΔΑ', 'ψυχή', 'ἀρχὴ', 'Ὀδυσσεύς', 'Привет', 'мир', 'Москва', 'ЁЛКА',
    'щука', 'Україна', 'їжак', 'Ґанок', 'Србија', 'ђак', 'Ӂ', 'مرحبا', 'بالعالم', 'السَّلَامُ', 'عَلَيْكُم', 'سلام', 'شكراً',
    'שלום', 'עולם', 'שָׁלוֹם', 'תּוֹדָה', 'נמצא', 'नमस्ते', 'दुनिया', 'हिन्दी', 'สวัสดี', 'ชาวโลก', 'வணக்கம்', 'გამარჯობა',
    'Բարեւ', 'ሰላም', '日本語', 'のテキスト', 'カタカナ', 'ひらがな', '中文文本', '汉字', '漢字', '한국어', '안녕하세요', 'Ελληνικά',
    'Straße', 'Ærøskøbing', 'naïve', 'café', 'façade', 'Zürich', 'İstanbul', 'ı', 'ǅemal', 'ǈ', 'Ǉ', 'ǳ', 'ﬁnance', 'Ⅻ',
    'Σίσυφος', 'ÀÉÎÕÜ', 'àéîõü', 'Ꙭ', 'ꝏ', 'Ꞵ', 'ᏣᎳᎩ', 'ᓀᐦᐃᔭᐍᐏᐣ', 'ꦗꦮ', 'ᠮᠣᠩᠭᠣᠯ'];
  const EMOJI = ['😀', '😂', '🥲', '❤️', '👍', '🙏', '🎉', '🔥', '🚀', '🤖', '🧠', '🌍', '☕', '✅', '⚠️', '©️', '™', '♥', '★', '☂'];
  const TONES = ['\u{1F3FB}', '\u{1F3FC}', '\u{1F3FD}', '\u{1F3FE}', '\u{1F3FF}'];
  const ZWJ = ['👨‍👩‍👧‍👦', '👩🏽‍💻', '🏳️‍🌈', '🧑🏿‍🚀', '👁️‍🗨️', '❤️‍🔥', '🐻‍❄️', '👩‍❤️‍💋‍👨', '🏴‍☠️', '🧔🏻‍♂️'];
  const flag = () => cp(0x1f1e6 + int(26)) + cp(0x1f1e6 + int(26));
  const PUNCT = '.,;:!?…—–-()[]{}<>«»"\'“”‘’/\\|@#$%^&*_+=~`§¶•·、。！？「」『』（）：；'.split('');
  const SPACES = [' ', '  ', '\t', '\n', '\r\n', '\r', '\n\n', ' \n', '\u00a0', '\u3000', '\u2003', '\u2028', '\u2029',
    '\u202f', '\u205f', '\u1680', '\u200b', '\u180e', '\f', '\v'];
  const DIGITS = '0123456789';
  // blocks whose code points were all assigned before Unicode 16 (no Unicode 17 additions)
  const BLOCKS = [[0x20, 0x7e], [0xa0, 0x24f], [0x250, 0x2af], [0x370, 0x3ff], [0x400, 0x4ff], [0x531, 0x556], [0x5d0, 0x5ea],
    [0x620, 0x64a], [0x660, 0x669], [0x900, 0x97f], [0xe01, 0xe3a], [0x10a0, 0x10ff], [0x1100, 0x11ff], [0x2000, 0x206f],
    [0x20a0, 0x20c0], [0x2100, 0x214f], [0x2150, 0x218b], [0x2190, 0x21ff], [0x2200, 0x22ff], [0x2500, 0x257f],
    [0x3000, 0x303f], [0x3041, 0x3096], [0x30a0, 0x30ff], [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0xe000, 0xe0ff],
    [0xff01, 0xff9f], [0x1d400, 0x1d4ff], [0x1f300, 0x1f5ff], [0x1f600, 0x1f64f], [0x20000, 0x2a6df], [0x0300, 0x036f],
    [0x1ab0, 0x1abf], [0x1dc0, 0x1dff], [0x20d0, 0x20f0], [0xfe00, 0xfe0f], [0xe0100, 0xe01ef]];
  const randChar = () => { const [a, b] = pick(BLOCKS); return range(a, b); };
  const digits = (n) => { let s = ''; for (let i = 0; i < n; i++) s += DIGITS[int(10)]; return s; };
  const letters = (n, set = 'abcdefghijklmnopqrstuvwxyz') => { let s = ''; for (let i = 0; i < n; i++) s += set[int(set.length)]; return s; };

  function sentence() {
    const n = 3 + int(15);
    let s = '';
    for (let i = 0; i < n; i++) {
      let w = int(5) === 0 ? pick(WORLD) : pick(EN);
      if (int(8) === 0) w = w.toUpperCase();
      if (int(10) === 0) w = w[0].toUpperCase() + w.slice(1);
      s += (i ? (int(12) === 0 ? pick(SPACES) : ' ') : '') + w + (int(7) === 0 ? pick(PUNCT) : '');
    }
    return s + pick(['.', '!', '?', '...', '', '\n']);
  }

  const CODE = [
    'int main(int argc, char **argv) {\n\tif (argc < 2) return 1;\n\tprintf("%s\\n", argv[1]);\n\treturn 0;\n}\n',
    'def f(x):\n    """Docstring."""\n    return [i ** 2 for i in range(x) if i % 2 == 0]  # comment\n',
    'for (let i = 0; i < n; i++) {\r\n    total += a[i] * 0.5;\r\n}\r\n',
    '{"key": [1, 2.5e-3, null, true], "nested": {"a": "b\\u00e9"}}',
    '#!/usr/bin/env bash\nset -euo pipefail\nfor f in *.c; do\n\techo "$f" >&2\ndone\n',
    'SELECT id, name FROM users WHERE age >= 18 AND name LIKE \'%an%\';\n',
    '<div class="x">&nbsp;&lt;tag&gt;</div>\n',
    '    \t  mixed\t \tindent   \n\t\t\n      \n',
    'x = 1;   \ny = 2;\t\t\n\n\n\nz = x+y;\r\rw = 0;\r\n',
    'fn main() { let v: Vec<u8> = vec![0xFF, 0b1010, 1_000_000]; }\n',
    'a/b/c.txt\r\n../../etc/passwd //comment /* block */ \\\\server\\share\n',
  ];

  function codeSnippet() {
    let s = pick(CODE);
    if (int(2)) s = s.replace(/\n/g, pick(['\n', '\r\n', '\n\n', ' \n', '  \n', '\t\n']));
    if (int(3) === 0) s = s.replace(/ {4}/g, '\t');
    return s;
  }

  /* ---- the corpus ------------------------------------------------------------------------------- */
  const corpus = [];
  const add = (s) => corpus.push(s);

  // hand-picked
  ['', ' ', '\n', '\r', '\r\n', '\t', 'a', 'A', '1', '!', '\u0301', '\u0301abc', ' \u0301', '1\u0301', '!\u0301', 'e\u0301',
   'a\u0308\u0301\u0323\u0330', 'Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇', '\r\r\r', 'a\rb', '\r\nx', 'x\r', '   \n', '  \n\n', ' \t \n x',
   'a  \n  b', '    ', 'word    ', '    word', '\n\n\n\n', ' \n \n \n', '12', '123', '1234', '12345', '123456789',
   'a1b2c3', 'abc123def', '1st 2nd 3rd 4th', 'x²+y³', '½ ⅓ ¼', 'Ⅻ ⅻ', '٠١٢٣٤٥٦٧٨٩', '०१२', '１２３', '3.14159e-10',
   '-42', '1,000,000.00', '0xDEADbeef', 'v1.2.3-rc.4', '<|end|>', '<|start|>assistant<|message|>hi<|end|>',
   '<|endoftext|>', '<|endofprompt|>', '<|reserved_200018|>', '<|return|> <|call|>', '<||>', '<|', '|>',
   "don't", "DON'T", "Don'T", "I'm", "I'M", "we'll", "WE'LL", "We'Ll", "they've", "THEY'VE", "she'd", "SHE'D",
   "you're", "YOU'RE", "you'Re", "it's", "IT'S", "It'S", "x's", "X'S", "1's", " 's", "'s", "''s", "'''", "' s",
   "dog’s", "DOG’S", "rock'n'roll", "O'Neil's", "l'homme", "aujourd'hui", "'tis", "'twas", "ma'am",
   '\u00a0', 'a\u00a0b', '\u3000\u3000x', '\u2028', 'a\u2028b', '\u202f', '\u1680x', '\u200bx\u200b', '\u180e', 'a\u180eb',
   ' \u180e ', '\u180e\n', '\u00ad', 'soft\u00adhyphen', '\u200d', '\u200c', '\u2060', '\u{e0001}', '\u{f0000}',
   '\ufffd', '\ufffe', '\u{10ffff}', '\u{1f600}\u{1f600}\u{1f600}', '\u{1f1fa}\u{1f1f8}', '1️⃣', '#️⃣', '*️⃣'].forEach(add);
  for (const suf of ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]) {
    const vars = new Set();
    for (let m = 0; m < 1 << (suf.length - 1); m++) {
      let v = "'";
      for (let k = 1; k < suf.length; k++) v += (m >> (k - 1)) & 1 ? suf[k].toUpperCase() : suf[k];
      vars.add(v);
    }
    for (const v of vars) for (const pre of ['abc', 'ABC', 'Abc', 'aBC', '123', ' ', '', 'é', 'É', '日本', '!', 'x ', '\n'])
      for (const post of ['', ' next', 'x', '1', "'s", '\n']) add(pre + v + post);
  }
  // divergence triggers for js-tiktoken (checked against tiktoken only)
  ['\u0085', 'a\u0085b', ' \u0085 x', 'x\u0085\n', '\ufeff', '\ufeffHello', 'Hello\ufeff', 'a \ufeff b', '\ufeff\ufeff\n',
   'x\ufeff ', "x'ſ", "X'ſ next", "it'ſ", 'ſ', '\u0085\u0085  \u0085'].forEach(add);

  // generated
  for (let i = 0; i < 700; i++) add(sentence());
  for (let i = 0; i < 150; i++) add(sentence() + ' ' + sentence() + '\n' + sentence());
  for (let i = 0; i < 200; i++) { let s = ''; const n = 1 + int(30); for (let k = 0; k < n; k++) s += randChar(); add(s); }
  for (let i = 0; i < 200; i++) {
    let s = '';
    const n = 1 + int(20);
    for (let k = 0; k < n; k++) s += pick([randChar, () => pick(SPACES), () => pick(PUNCT), () => letters(1 + int(6)),
                                          () => digits(1 + int(6)), () => pick(WORLD), () => pick(EMOJI)])();
    add(s);
  }
  for (let n = 1; n <= 64; n++) { add(digits(n)); add('x' + digits(n) + 'y'); add(' ' + digits(n)); add(digits(n) + '.' + digits(1 + int(9))); }
  for (let i = 0; i < 100; i++) add(letters(2 + int(8)) + digits(1 + int(8)) + letters(1 + int(4), 'ABCXYZ') + digits(int(4)));
  for (let i = 0; i < 120; i++) {
    let s = '';
    const n = 1 + int(8);
    for (let k = 0; k < n; k++) {
      const e = pick(EMOJI);
      s += pick([() => e, () => e.replace('\ufe0f', '') + pick(TONES), () => pick(ZWJ), flag, () => ' ', () => pick(WORLD)])();
    }
    add(s);
  }
  for (let i = 0; i < 150; i++) add(codeSnippet());
  for (let i = 0; i < 120; i++) {
    let s = '';
    const n = 1 + int(6);
    for (let k = 0; k < n; k++) s += pick(SPACES).repeat(1 + int(12)) + pick(['', 'x', 'X', '1', '!', '\u0301', 'é', '日']);
    add(s);
  }
  for (let i = 0; i < 80; i++) {
    let s = letters(1 + int(5));
    for (let k = 0; k < 1 + int(5); k++) s += range(0x300, 0x36f);
    add(s + (int(2) ? ' ' + letters(3) : ''));
  }
  // very long words and runs (kept below what tiktoken's O(n^2) merge handles quickly)
  for (const n of [100, 300, 1000, 3000, 8000]) {
    add(letters(n));
    add(letters(n, 'ab'));
    add('a'.repeat(n));
    add(letters(n, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'));
    add(digits(n));
    add('!'.repeat(n));
    add(' '.repeat(n) + 'x');
    add(' '.repeat(n));
    add('\n'.repeat(n));
    add('\t'.repeat(n) + '\n');
    let cjk = '';
    for (let k = 0; k < n; k++) cjk += range(0x4e00, 0x9fff);
    add(cjk);
    add('😀'.repeat(n / 4));
    add(letters(n, 'aeiouáéíóúàèìòù'));
  }
  // a text of 1 MB
  {
    const parts = [];
    for (let n = 0; n < 1 << 20;) {
      const p = pick([sentence, codeSnippet, () => pick(WORLD) + ' ', () => pick(ZWJ), () => digits(1 + int(20)) + ' ',
                      () => pick(SPACES).repeat(1 + int(5)), () => letters(5 + int(60))])();
      parts.push(p);
      n += Buffer.byteLength(p);
    }
    add(parts.join(''));
  }
  return corpus;
}

// Strings where JavaScript regexes split differently from tiktoken's Rust regex by design (JS \s
// has U+FEFF and lacks U+0085; JS has no Unicode case folding of 's to 'ſ), and strings with a
// piece so long that the O(n^2) JavaScript merges take seconds.
const jsDiverges = /[\u0085\ufeff\u017f]/;
const longPiece = /[a-zA-Z\u00c0-\u024f]{1001,}|\d{1001,}|[!]{1001,}|\s{1001,}|[\u4e00-\u9fff]{334,}|(?:\u{1f600}){251,}/u;

module.exports = { build, jsDiverges, longPiece };
