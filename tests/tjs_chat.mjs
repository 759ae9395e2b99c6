// A chat through transformers.js's text-generation pipeline, as its users run it: the export
// directory loaded with remote models off, the tokenizer and chat template from the files beside
// the model (tokenizer.json, tokenizer_config.json), greedy generation. Prints one JSON line
// {"text": the assistant's reply as the pipeline returns it, "prompt_ids": the ids the template
// and tokenizer gave}.
//
//   node tjs_chat.mjs TJS_DIR EXPORT_DIR MAX_NEW_TOKENS USER_MESSAGE
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [tjsDir, modelDir, maxNew, user] = process.argv.slice(2);
const tjs = await import(pathToFileURL(path.resolve(tjsDir,
  'node_modules/@huggingface/transformers/dist/transformers.node.mjs')).href);
const { pipeline, env } = tjs;
env.allowRemoteModels = false;
env.allowLocalModels = true;

const gen = await pipeline('text-generation', path.resolve(modelDir)); // default options
const messages = [{ role: 'user', content: user }];
const prompt = gen.tokenizer.apply_chat_template(messages, { tokenize: false, add_generation_prompt: true });
const promptIds = Array.from(gen.tokenizer(prompt, { add_special_tokens: false }).input_ids.data).map(Number);
const out = await gen(messages, { max_new_tokens: Number(maxNew), do_sample: false });
const last = out[0].generated_text.at(-1);
console.log(JSON.stringify({ text: last.content, role: last.role, prompt_ids: promptIds }));
await gen.dispose();
