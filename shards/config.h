/* config: the model configuration (docs/gpt-oss-spec.md sections 1, 3 and 11).
 *
 * Two spellings are read: the original `config.json` (exactly 16 keys; an unknown key is an
 * error, as in the official loader) and the Hugging Face `config.json` (num_local_experts,
 * num_experts_per_tok, rope_scaling{factor, beta_fast, beta_slow,
 * original_max_position_embeddings}, layer_types; other keys ignored). Every number is parsed
 * as a JSON number (double) and converted; integers must be integral and in range.
 *
 * Missing keys: the shape-defining keys (layers, experts, top-k, vocab, hidden, intermediate,
 * head_dim, heads, kv heads) are required: guessing the official 120B default for a 20B file
 * would only fail later and less clearly. The others take the official default (spec section 1)
 * and config_parse reports them in `defaulted` so the caller can warn.
 *
 * Constraints checked (spec sections 1, 3): all counts > 0, hidden and intermediate multiples
 * of 32, heads divisible by kv heads, head_dim even, top-k <= experts, sliding_window >= 0,
 * swiglu_limit > 0, rope_theta > 0, rope_scaling_factor >= 1, and with YaRN
 * 0 < low < high < head_dim/2 - 1. Local (no MPI). */
#ifndef GPTOSS_CONFIG_H
#define GPTOSS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef enum { LAYOUT_ORIGINAL = 0, LAYOUT_HF = 1 } ckpt_layout;

typedef struct {
  int n_layers;            /* num_hidden_layers        L  */
  int n_experts;           /* num_experts              E  */
  int top_k;               /* experts_per_token        K  */
  int vocab;               /* vocab_size               V  */
  int hidden;              /* hidden_size              D  */
  int intermediate;        /* intermediate_size        I  */
  int head_dim;            /* head_dim                 Dh */
  int n_heads;             /* num_attention_heads      H  */
  int n_kv_heads;          /* num_key_value_heads      KV */
  int sliding_window;      /* 0 = full attention everywhere */
  int initial_context_length;
  double swiglu_limit;
  double rope_theta;
  double rope_scaling_factor;
  double rope_ntk_alpha;
  double rope_ntk_beta;
} gpt_config;

#define CONFIG_N_KEYS 16
/* The 16 original key names, in the order of spec section 1. */
extern const char *const config_key_names[CONFIG_N_KEYS];

/* Parse JSON text (len bytes) of the given layout; `path` names the file in messages.
 * defaulted (may be NULL) receives a ", "-separated list of keys that took defaults. */
int config_parse(const char *path, const char *text, size_t len, ckpt_layout layout,
                 gpt_config *out, char *defaulted, size_t defaulted_len, err *e);
/* Check the constraints above (config_parse calls it). */
int config_validate(const gpt_config *c, const char *path, err *e);
/* Official defaults (the 120B values) for every field. */
void config_defaults(gpt_config *c);
/* The gpt-oss-20b / gpt-oss-120b configurations (spec section 1). */
void config_preset_20b(gpt_config *c);
void config_preset_120b(gpt_config *c);

/* Derived sizes. */
static inline int64_t config_qkv_rows(const gpt_config *c) {
  return (int64_t)c->head_dim * ((int64_t)c->n_heads + 2 * (int64_t)c->n_kv_heads);
}
static inline int config_layer_is_sliding(const gpt_config *c, int layer) {
  return c->sliding_window > 0 && layer % 2 == 0;
}

/* YaRN constants (double, as the reference computes them; spec section 6.3). */
typedef struct { double low, high, concentration; } config_yarn;
void config_yarn_params(const gpt_config *c, config_yarn *out);

/* RoPE inverse frequencies and concentration exactly as the reference computes them (spec 6.3:
 * float32 tensor arithmetic; low/high/concentration are doubles used as float32 scalars).
 * inv_freq: [head_dim/2]. Used by the forward pass and by the exporter, so both agree bitwise. */
int config_rope_inv_freq(const gpt_config *c, float *inv_freq, float *concentration, err *e);

/* Write the config as an original-layout config.json (16 keys, spec section 1 order). */
int config_to_json_original(const gpt_config *c, char *buf, size_t len);
/* Write the config as a Hugging Face config.json. */
int config_to_json_hf(const gpt_config *c, char *buf, size_t len);

#endif
