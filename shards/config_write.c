/* config.json writers for both layouts (spec sections 1 and 11).
 *
 * Numbers are written the way the published files write them (rope_theta 150000, rope_ntk_alpha
 * 1 and rope_ntk_beta 32 as integers; swiglu_limit 7.0 and rope_scaling_factor 32.0 with a
 * point) and always with enough digits that config_parse reads back the same double. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* Shortest %g spelling that reads back as exactly v; integral values without an exponent
 * below 2^53 are written as integers, followed by ".0" when `point` asks for a float look. */
static void fmt_double(char *out, size_t len, double v, int point) {
  if (v == floor(v) && fabs(v) < 9007199254740992.0) {
    snprintf(out, len, point ? "%.0f.0" : "%.0f", v);
    return;
  }
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(out, len, "%.*g", prec, v);
    if (strtod(out, NULL) == v) return;
  }
}

typedef struct {
  char *buf;
  size_t len, pos;
  int overflow;
} jbuf;

static void jb_printf(jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jb_printf(jbuf *b, const char *fmt, ...) {
  if (b->overflow) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b->buf + b->pos, b->len - b->pos, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= b->len - b->pos) {
    b->overflow = 1;
    return;
  }
  b->pos += (size_t)n;
}

static int jb_finish(jbuf *b) {
  if (b->overflow || b->pos > 0x7fffffff) {
    if (b->len) b->buf[0] = '\0';
    return -1;
  }
  return (int)b->pos;
}

int config_to_json_original(const gpt_config *c, char *buf, size_t len) {
  jbuf b = {buf, len, 0, len == 0};
  char swiglu[40], theta[40], factor[40], alpha[40], beta[40];
  fmt_double(swiglu, sizeof swiglu, c->swiglu_limit, 1);
  fmt_double(theta, sizeof theta, c->rope_theta, 0);
  fmt_double(factor, sizeof factor, c->rope_scaling_factor, 1);
  fmt_double(alpha, sizeof alpha, c->rope_ntk_alpha, 0);
  fmt_double(beta, sizeof beta, c->rope_ntk_beta, 0);
  jb_printf(&b,
            "{\n"
            "  \"num_hidden_layers\": %d,\n"
            "  \"num_experts\": %d,\n"
            "  \"experts_per_token\": %d,\n"
            "  \"vocab_size\": %d,\n"
            "  \"hidden_size\": %d,\n"
            "  \"intermediate_size\": %d,\n"
            "  \"swiglu_limit\": %s,\n"
            "  \"head_dim\": %d,\n"
            "  \"num_attention_heads\": %d,\n"
            "  \"num_key_value_heads\": %d,\n"
            "  \"sliding_window\": %d,\n"
            "  \"initial_context_length\": %d,\n"
            "  \"rope_theta\": %s,\n"
            "  \"rope_scaling_factor\": %s,\n"
            "  \"rope_ntk_alpha\": %s,\n"
            "  \"rope_ntk_beta\": %s\n"
            "}\n",
            c->n_layers, c->n_experts, c->top_k, c->vocab, c->hidden, c->intermediate, swiglu,
            c->head_dim, c->n_heads, c->n_kv_heads, c->sliding_window, c->initial_context_length,
            theta, factor, alpha, beta);
  return jb_finish(&b);
}

int config_to_json_hf(const gpt_config *c, char *buf, size_t len) {
  jbuf b = {buf, len, 0, len == 0};
  char swiglu[40], theta[40], factor[40], alpha[40], beta[40];
  fmt_double(swiglu, sizeof swiglu, c->swiglu_limit, 1);
  fmt_double(theta, sizeof theta, c->rope_theta, 0);
  fmt_double(factor, sizeof factor, c->rope_scaling_factor, 1);
  /* HF writes beta_fast/beta_slow as floats (32.0, 1.0) */
  fmt_double(beta, sizeof beta, c->rope_ntk_beta, 1);
  fmt_double(alpha, sizeof alpha, c->rope_ntk_alpha, 1);
  /* Keys in the sorted order of the published transformers config. */
  jb_printf(&b,
            "{\n"
            "  \"architectures\": [\n    \"GptOssForCausalLM\"\n  ],\n"
            "  \"attention_bias\": true,\n"
            "  \"attention_dropout\": 0.0,\n"
            "  \"experts_per_token\": %d,\n"
            "  \"head_dim\": %d,\n"
            "  \"hidden_act\": \"silu\",\n"
            "  \"hidden_size\": %d,\n"
            "  \"initial_context_length\": %d,\n"
            "  \"intermediate_size\": %d,\n"
            "  \"layer_types\": [",
            c->top_k, c->head_dim, c->hidden, c->initial_context_length, c->intermediate);
  /* GPT-OSS alternates by layer parity; the window size itself is sliding_window (0 = none) */
  for (int l = 0; l < c->n_layers; l++)
    jb_printf(&b, "%s\n    \"%s\"", l ? "," : "", l % 2 == 0 ? "sliding_attention" : "full_attention");
  jb_printf(&b,
            "\n  ],\n"
            "  \"max_position_embeddings\": 131072,\n"
            "  \"model_type\": \"gpt_oss\",\n"
            "  \"num_attention_heads\": %d,\n"
            "  \"num_experts_per_tok\": %d,\n"
            "  \"num_hidden_layers\": %d,\n"
            "  \"num_key_value_heads\": %d,\n"
            "  \"num_local_experts\": %d,\n"
            "  \"output_router_logits\": false,\n"
            "  \"quantization_config\": {\n"
            "    \"modules_to_not_convert\": [\n"
            "      \"model.layers.*.self_attn\",\n"
            "      \"model.layers.*.mlp.router\",\n"
            "      \"model.embed_tokens\",\n"
            "      \"lm_head\"\n"
            "    ],\n"
            "    \"quant_method\": \"mxfp4\"\n"
            "  },\n"
            "  \"rms_norm_eps\": 1e-05,\n"
            "  \"rope_scaling\": {\n"
            "    \"beta_fast\": %s,\n"
            "    \"beta_slow\": %s,\n"
            "    \"factor\": %s,\n"
            "    \"original_max_position_embeddings\": %d,\n"
            "    \"rope_type\": \"yarn\",\n"
            "    \"truncate\": false\n"
            "  },\n"
            "  \"rope_theta\": %s,\n"
            "  \"sliding_window\": %d,\n"
            "  \"swiglu_limit\": %s,\n"
            "  \"tie_word_embeddings\": false,\n"
            "  \"use_cache\": true,\n"
            "  \"vocab_size\": %d\n"
            "}\n",
            c->n_heads, c->top_k, c->n_layers, c->n_kv_heads, c->n_experts, beta, alpha, factor,
            c->initial_context_length, theta, c->sliding_window, swiglu, c->vocab);
  return jb_finish(&b);
}
