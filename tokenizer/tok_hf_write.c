/* Writing the Hugging Face tokenizer files: tokenizer.json as transformers' TikTokenConverter
 * (GptOssConverter) makes it from the ranks, and tokenizer_config.json with the harmony chat
 * template inside (transformers.js reads the template only from there). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "tok_internal.h"

static const char chat_template[] =
    "{#- gptoss-mpi harmony chat template: the system message (reasoning_effort, default \"medium\"),\n"
    "    a \"system\" or \"developer\" message as the developer instructions, user and assistant turns,\n"
    "    rendered as openai-harmony renders them (tokenizer/tok_chat.c). -#}\n"
    "{%- if reasoning_effort is not defined -%}{%- set reasoning_effort = \"medium\" -%}{%- endif -%}\n"
    "{{- \"<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\\n"
    "Knowledge cutoff: 2024-06\\n\\nReasoning: \" + reasoning_effort + \"\\n\\n# Valid channels: analysis, "
    "commentary, final. Channel must be included for every message.<|end|>\" -}}\n"
    "{%- for message in messages -%}\n"
    "{%- if message.role == \"system\" or message.role == \"developer\" -%}\n"
    "{{- \"<|start|>developer<|message|># Instructions\\n\\n\" + message.content + \"<|end|>\" -}}\n"
    "{%- elif message.role == \"user\" -%}\n"
    "{{- \"<|start|>user<|message|>\" + message.content + \"<|end|>\" -}}\n"
    "{%- elif message.role == \"assistant\" -%}\n"
    "{{- \"<|start|>assistant<|channel|>final<|message|>\" + message.content + \"<|end|>\" -}}\n"
    "{%- else -%}\n"
    "{{- raise_exception(\"this chat template knows the roles system, developer, user and assistant, not \" + "
    "message.role) -}}\n"
    "{%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}{{- \"<|start|>assistant\" -}}{%- endif -%}\n";

const char *tok_chat_template(void) { return chat_template; }

/* ---- JSON text ----------------------------------------------------------------------------- */

static int put(tok_buf *b, const char *s, err *e) { return tok_buf_append(b, s, strlen(s), e); }

static int putf(tok_buf *b, err *e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int putf(tok_buf *b, err *e, const char *fmt, ...) {
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (k < 0 || (size_t)k >= sizeof tmp) return err_set(e, EXIT_RUNTIME, "tokenizer: internal format overflow");
  return tok_buf_append(b, tmp, (size_t)k, e);
}

/* A JSON string of UTF-8 text s[0..n). */
static int put_json_string(tok_buf *b, const char *s, size_t n, err *e) {
  if (put(b, "\"", e) != 0) return -1;
  size_t run = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    if (tok_buf_append(b, s + run, i - run, e) != 0) return -1;
    run = i + 1;
    int rc = c == '"' ? put(b, "\\\"", e) : c == '\\' ? put(b, "\\\\", e) : c == '\n' ? put(b, "\\n", e)
           : c == '\t' ? put(b, "\\t", e) : c == '\r' ? put(b, "\\r", e) : putf(b, e, "\\u%04x", c);
    if (rc != 0) return -1;
  }
  if (tok_buf_append(b, s + run, n - run, e) != 0) return -1;
  return put(b, "\"", e);
}

/* The byte-level spelling of token bytes, as a JSON string (every code point is below U+0200). */
static int put_bytelevel(tok_buf *b, const uint8_t *p, size_t n, err *e) {
  char s[2 * TOK_TOKEN_MAX];
  size_t o = 0;
  for (size_t i = 0; i < n && i < TOK_TOKEN_MAX; i++) {
    uint32_t cp = tok_byte_to_cp(p[i]);
    if (cp < 0x80) {
      s[o++] = (char)cp;
    } else {
      s[o++] = (char)(0xc0 | cp >> 6);
      s[o++] = (char)(0x80 | (cp & 63));
    }
  }
  return put_json_string(b, s, o, e);
}

static void token_of(const tok *t, uint32_t id, const uint8_t **p, size_t *n) {
  *p = t->blob + t->off[id];
  *n = t->off[id + 1] - t->off[id];
}

/* ---- tokenizer.json ------------------------------------------------------------------------ */

typedef struct {
  uint32_t l, r, split;
} split_t;

static int split_cmp(const void *a, const void *b) {
  const split_t *x = a, *y = b;
  if (x->l != y->l) return x->l < y->l ? -1 : 1;
  if (x->r != y->r) return x->r < y->r ? -1 : 1;
  return 0;
}

static int put_added_token(tok_buf *b, int32_t id, int json_line, err *e) {
  const char *name = tok_special_name(id);
  if (json_line) {
    if (putf(b, e, "    {\"id\": %ld, \"content\": ", (long)id) != 0) return -1;
  } else if (putf(b, e, "    \"%ld\": {\"content\": ", (long)id) != 0) {
    return -1;
  }
  if (put_json_string(b, name, strlen(name), e) != 0) return -1;
  return put(b, json_line ? ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, "
                            "\"normalized\": false, \"special\": true}"
                          : ", \"lstrip\": false, \"normalized\": false, \"rstrip\": false, "
                            "\"single_word\": false, \"special\": true}", e);
}

static int put_merges(const tok *t, tok_buf *b, err *e) {
  split_t local[TOK_TOKEN_MAX];
  int first = 1;
  for (uint32_t r = 0; r < t->n_ranks; r++) {
    const uint8_t *p;
    size_t n, k = 0;
    token_of(t, r, &p, &n);
    for (size_t i = 1; i < n; i++) {
      uint32_t rl = tok_rank_of(t, p, i), rr = tok_rank_of(t, p + i, n - i);
      if (rl != TOK_NO_RANK && rr != TOK_NO_RANK) local[k++] = (split_t){rl, rr, (uint32_t)i};
    }
    qsort(local, k, sizeof local[0], split_cmp);
    for (size_t j = 0; j < k; j++) {
      if (put(b, first ? "\n      [" : ",\n      [", e) != 0 || put_bytelevel(b, p, local[j].split, e) != 0 ||
          put(b, ", ", e) != 0 || put_bytelevel(b, p + local[j].split, n - local[j].split, e) != 0 ||
          put(b, "]", e) != 0)
        return -1;
      first = 0;
    }
  }
  return 0;
}

int tok_hf_tokenizer_json(const tok *t, tok_buf *b, err *e) {
  if (put(b, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [\n", e) != 0)
    return -1;
  for (int32_t id = TOK_FIRST_SPECIAL; id < TOK_N_VOCAB; id++)
    if (put_added_token(b, id, 1, e) != 0 || put(b, id + 1 < TOK_N_VOCAB ? ",\n" : "\n", e) != 0) return -1;
  if (put(b, "  ],\n  \"normalizer\": null,\n  \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [\n"
             "    {\"type\": \"Split\", \"pattern\": {\"Regex\": ", e) != 0 ||
      put_json_string(b, tok_o200k_pattern, strlen(tok_o200k_pattern), e) != 0 ||
      put(b, "}, \"behavior\": \"Isolated\", \"invert\": false},\n"
             "    {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": false}]},\n"
             "  \"post_processor\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": false, "
             "\"use_regex\": true},\n"
             "  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": true, "
             "\"use_regex\": true},\n"
             "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n    \"unk_token\": null,\n"
             "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n    \"fuse_unk\": false,\n"
             "    \"byte_fallback\": false,\n    \"ignore_merges\": true,\n    \"vocab\": {", e) != 0)
    return -1;
  for (uint32_t r = 0; r < t->n_ranks; r++) {
    const uint8_t *p;
    size_t n;
    token_of(t, r, &p, &n);
    if (put(b, r ? ",\n      " : "\n      ", e) != 0 || put_bytelevel(b, p, n, e) != 0 || putf(b, e, ": %u", r) != 0)
      return -1;
  }
  if (put(b, "\n    },\n    \"merges\": [", e) != 0 || put_merges(t, b, e) != 0 || put(b, "\n    ]\n  }\n}\n", e) != 0)
    return -1;
  return 0;
}

/* ---- tokenizer_config.json ----------------------------------------------------------------- */

int tok_hf_tokenizer_config(tok_buf *b, err *e) {
  if (put(b, "{\n  \"added_tokens_decoder\": {\n", e) != 0) return -1;
  for (int32_t id = TOK_FIRST_SPECIAL; id < TOK_N_VOCAB; id++)
    if (put_added_token(b, id, 0, e) != 0 || put(b, id + 1 < TOK_N_VOCAB ? ",\n" : "\n", e) != 0) return -1;
  if (put(b, "  },\n  \"bos_token\": \"<|startoftext|>\",\n  \"chat_template\": ", e) != 0 ||
      put_json_string(b, chat_template, strlen(chat_template), e) != 0 ||
      put(b, ",\n  \"clean_up_tokenization_spaces\": false,\n  \"eos_token\": \"<|return|>\",\n"
             "  \"model_input_names\": [\"input_ids\", \"attention_mask\"],\n  \"pad_token\": \"<|endoftext|>\",\n"
             "  \"tokenizer_class\": \"PreTrainedTokenizerFast\"\n}\n", e) != 0)
    return -1;
  return 0;
}

int tok_hf_write_dir(const tok *t, const char *dir, err *e) {
  tok_buf json = {0}, cfg = {0};
  char *p1 = NULL, *p2 = NULL;
  size_t n = strlen(dir) + 32;
  int rc = -1;
  if (!(p1 = malloc(n)) || !(p2 = malloc(n))) {
    err_set(e, EXIT_RUNTIME, "%s: out of memory", dir);
    goto done;
  }
  snprintf(p1, n, "%s/tokenizer.json", dir);
  snprintf(p2, n, "%s/tokenizer_config.json", dir);
  if (tok_hf_tokenizer_json(t, &json, e) != 0 || tok_hf_tokenizer_config(&cfg, e) != 0) goto done;
  if (atomic_write_file(p1, json.p, json.n, e) != 0) goto done;
  if (atomic_write_file(p2, cfg.p, cfg.n, e) != 0) goto done;
  rc = 0;
done:
  free(p1);
  free(p2);
  tok_buf_free(&json);
  tok_buf_free(&cfg);
  return rc;
}
