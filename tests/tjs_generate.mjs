// Greedy generation from an export directory with transformers.js (a real client, run as its
// users run it): AutoModelForCausalLM.from_pretrained(DIR) with remote models disabled, then
// model.generate() on prompt ids (greedy; the stop ids are generation_config.json's). Prints one
// JSON line: {"rows": [[new ids...], ...]} (a row that stopped early is padded with PAD_ID).
//
//   node tjs_generate.mjs TJS_DIR EXPORT_DIR MAX_NEW_TOKENS PAD_ID IDS[;IDS...]
//
// TJS_DIR: the prefix @huggingface/transformers was installed under (scripts/setup.sh --test).
// Several prompts (';'-separated, each comma-separated) run as one left-padded batch with
// attention_mask 0 on the padding, the way a tokenizer pads a batch for a decoder.
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [tjsDir, modelDir, maxNew, padId, promptsArg] = process.argv.slice(2);
const tjs = await import(pathToFileURL(path.resolve(tjsDir,
  'node_modules/@huggingface/transformers/dist/transformers.node.mjs')).href);
const { AutoModelForCausalLM, Tensor, env } = tjs;
env.allowRemoteModels = false;
env.allowLocalModels = true;

const prompts = promptsArg.split(';').map((p) => p.split(',').map((x) => BigInt(x)));
const B = prompts.length, L = Math.max(...prompts.map((p) => p.length));
const ids = [], mask = [];
for (const p of prompts) {
  for (let i = p.length; i < L; i++) { ids.push(BigInt(padId)); mask.push(0n); }
  for (const x of p) { ids.push(x); mask.push(1n); }
}
const model = await AutoModelForCausalLM.from_pretrained(path.resolve(modelDir)); // default options
const out = await model.generate({
  input_ids: new Tensor('int64', BigInt64Array.from(ids), [B, L]),
  attention_mask: new Tensor('int64', BigInt64Array.from(mask), [B, L]),
  max_new_tokens: Number(maxNew),
  do_sample: false,
});
const rows = [];
for (let b = 0; b < B; b++) rows.push(Array.from(out[b].data.slice(L)).map(Number));
console.log(JSON.stringify({ rows }));
await model.dispose();
