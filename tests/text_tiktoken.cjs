// tiktoken 1.0.22 (WASM), the independent reference for text_test.py:
//   node text_tiktoken.cjs encode TEXT   -> comma-separated ids of encode_ordinary(TEXT)
//   node text_tiktoken.cjs decode IDS    -> the text of the ids (errors replaced, as Python does)
const path = require('path');
const { get_encoding } = require(path.join(process.env.TOK_DEPS, 'tiktoken'));
const enc = get_encoding('o200k_base');
const [mode, arg] = process.argv.slice(2);
if (mode === 'encode') {
  process.stdout.write(Array.from(enc.encode_ordinary(arg)).join(','));
} else {
  // the specials of o200k_harmony are not in o200k_base: the test only decodes ordinary ids
  const ids = new Uint32Array(arg.split(',').map(Number));
  process.stdout.write(new TextDecoder('utf-8').decode(enc.decode(ids)));
}
enc.free();
