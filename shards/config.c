/* config.json parsing (both spellings), validation, defaults, presets, YaRN (config.h). */
#include "config.h"
#include "quote.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

const char *const config_key_names[CONFIG_N_KEYS] = {
    "num_hidden_layers", "num_experts",         "experts_per_token",      "vocab_size",
    "hidden_size",       "intermediate_size",   "swiglu_limit",           "head_dim",
    "num_attention_heads", "num_key_value_heads", "sliding_window",       "initial_context_length",
    "rope_theta",        "rope_scaling_factor", "rope_ntk_alpha",         "rope_ntk_beta"};

/* How each of the 16 fields is read, in config_key_names order. */
enum { K_INT_POS, K_INT_NONNEG, K_DOUBLE };
typedef struct {
  int kind;
  int required;        /* shape-defining: no default (config.h) */
  const char *hf;      /* Hugging Face spelling; "rope_scaling.x" = inside rope_scaling */
} key_info;
static const key_info keys[CONFIG_N_KEYS] = {
    {K_INT_POS, 1, "num_hidden_layers"},
    {K_INT_POS, 1, "num_local_experts"},
    {K_INT_POS, 1, "num_experts_per_tok"},
    {K_INT_POS, 1, "vocab_size"},
    {K_INT_POS, 1, "hidden_size"},
    {K_INT_POS, 1, "intermediate_size"},
    {K_DOUBLE, 0, "swiglu_limit"},
    {K_INT_POS, 1, "head_dim"},
    {K_INT_POS, 1, "num_attention_heads"},
    {K_INT_POS, 1, "num_key_value_heads"},
    {K_INT_NONNEG, 0, "sliding_window"},
    {K_INT_POS, 0, "rope_scaling.original_max_position_embeddings"},
    {K_DOUBLE, 0, "rope_theta"},
    {K_DOUBLE, 0, "rope_scaling.factor"},
    {K_DOUBLE, 0, "rope_scaling.beta_slow"},
    {K_DOUBLE, 0, "rope_scaling.beta_fast"},
};

/* Keys only the Hugging Face spelling has: named in the error when an original-layout
 * checkpoint comes with a Hugging Face config.json. */
static const char *const hf_only[] = {"num_local_experts", "num_experts_per_tok", "rope_scaling",
                                      "layer_types", "model_type", "architectures"};

static void *field(gpt_config *c, int k) {
  switch (k) {
    case 0: return &c->n_layers;
    case 1: return &c->n_experts;
    case 2: return &c->top_k;
    case 3: return &c->vocab;
    case 4: return &c->hidden;
    case 5: return &c->intermediate;
    case 6: return &c->swiglu_limit;
    case 7: return &c->head_dim;
    case 8: return &c->n_heads;
    case 9: return &c->n_kv_heads;
    case 10: return &c->sliding_window;
    case 11: return &c->initial_context_length;
    case 12: return &c->rope_theta;
    case 13: return &c->rope_scaling_factor;
    case 14: return &c->rope_ntk_alpha;
    default: return &c->rope_ntk_beta;
  }
}


/* Store JSON value v into field k; `name` is the key as spelled in the file. */
static int set_value(const char *path, const char *name, const cJSON *v, int k, gpt_config *c,
                     err *e) {
  const int kind = keys[k].kind;
  if (!cJSON_IsNumber(v))
    return err_set(e, EXIT_RUNTIME, "%s: key '%s' is %s, expected a number", path, name,
                   quote_json_kind(v));
  const double d = v->valuedouble;
  if (!isfinite(d))
    return err_set(e, EXIT_RUNTIME, "%s: key '%s' = %g is not a finite number", path, name, d);
  if (kind == K_DOUBLE) {
    *(double *)field(c, k) = d;
    return 0;
  }
  if (floor(d) != d)
    return err_set(e, EXIT_RUNTIME, "%s: key '%s' = %.17g, expected an integer", path, name, d);
  if (d > INT_MAX || d < (kind == K_INT_POS ? 1 : 0))
    return err_set(e, EXIT_RUNTIME, "%s: key '%s' = %.17g, expected an integer in [%d, %d]",
                   path, name, d, kind == K_INT_POS ? 1 : 0, INT_MAX);
  *(int *)field(c, k) = (int)d;
  return 0;
}

static void add_defaulted(char *buf, size_t len, const char *name) {
  if (!buf || !len) return;
  size_t n = strlen(buf);
  snprintf(buf + n, len - n, "%s%s", n ? ", " : "", name);
}

static int parse_original(const char *path, const cJSON *root, gpt_config *out, int *seen,
                          err *e) {
  for (const cJSON *it = root->child; it; it = it->next) {
    int k = 0;
    while (k < CONFIG_N_KEYS && strcmp(it->string, config_key_names[k]) != 0) k++;
    if (k == CONFIG_N_KEYS) {
      for (size_t h = 0; h < sizeof hf_only / sizeof *hf_only; h++)
        if (strcmp(it->string, hf_only[h]) == 0)
          return err_set(e, EXIT_RUNTIME, "%s: key '%s' is Hugging Face spelling; the "
                         "original layout needs the 16 keys of the original config.json",
                         path, it->string);
      char qk[128];
      return err_set(e, EXIT_RUNTIME, "%s: unknown key '%s' (the original config.json has "
                     "exactly 16 keys, as the official loader requires)", path,
                     quote_name(it->string, qk, sizeof qk));
    }
    if (seen[k]++)
      return err_set(e, EXIT_RUNTIME, "%s: key '%s' given twice", path, it->string);
    if (set_value(path, it->string, it, k, out, e) != 0) return -1;
  }
  return 0;
}

static int check_layer_types(const char *path, const cJSON *lt, int n_layers, err *e) {
  if (!cJSON_IsArray(lt))
    return err_set(e, EXIT_RUNTIME, "%s: key 'layer_types' is %s, expected an array", path,
                   quote_json_kind(lt));
  int n = cJSON_GetArraySize(lt);
  if (n != n_layers)
    return err_set(e, EXIT_RUNTIME, "%s: key 'layer_types' has %d entries, expected %d "
                   "(num_hidden_layers)", path, n, n_layers);
  int i = 0;
  for (const cJSON *v = lt->child; v; v = v->next, i++) {
    const char *want = i % 2 == 0 ? "sliding_attention" : "full_attention";
    char qv[128];
    if (!cJSON_IsString(v) || strcmp(v->valuestring, want) != 0)
      return err_set(e, EXIT_RUNTIME, "%s: layer_types[%d] is %s%s%s, expected \"%s\" (GPT-OSS "
                     "alternates sliding (even layers) and full attention (odd layers))", path,
                     i, cJSON_IsString(v) ? "\"" : quote_json_kind(v),
                     cJSON_IsString(v) ? quote_name(v->valuestring, qv, sizeof qv) : "",
                     cJSON_IsString(v) ? "\"" : "", want);
  }
  return 0;
}

static int parse_hf(const char *path, const cJSON *root, gpt_config *out, int *seen, err *e) {
  const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
  if (rs && !cJSON_IsObject(rs))
    return err_set(e, EXIT_RUNTIME, "%s: key 'rope_scaling' is %s, expected an object", path,
                   quote_json_kind(rs));
  if (rs) {
    const cJSON *rt = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    char qv[128];
    if (rt && !(cJSON_IsString(rt) && strcmp(rt->valuestring, "yarn") == 0))
      return err_set(e, EXIT_RUNTIME, "%s: rope_scaling.rope_type is %s%s%s, expected "
                     "\"yarn\"", path, cJSON_IsString(rt) ? "\"" : quote_json_kind(rt),
                     cJSON_IsString(rt) ? quote_name(rt->valuestring, qv, sizeof qv) : "",
                     cJSON_IsString(rt) ? "\"" : "");
  }
  for (int k = 0; k < CONFIG_N_KEYS; k++) {
    const char *name = keys[k].hf;
    const cJSON *v;
    if (strncmp(name, "rope_scaling.", 13) == 0)
      v = rs ? cJSON_GetObjectItemCaseSensitive(rs, name + 13) : NULL;
    else
      v = cJSON_GetObjectItemCaseSensitive(root, name);
    if (!v) continue;
    seen[k] = 1;
    if (set_value(path, name, v, k, out, e) != 0) return -1;
  }
  /* An original-spelling config would otherwise only be reported as "missing num_local_experts". */
  for (int k = 0; k < CONFIG_N_KEYS; k++)
    if (!seen[k] && keys[k].required && strcmp(keys[k].hf, config_key_names[k]) != 0 &&
        cJSON_GetObjectItemCaseSensitive(root, config_key_names[k]))
      return err_set(e, EXIT_RUNTIME, "%s: missing key '%s' (Hugging Face layout); found '%s', "
                     "the original config.json spelling", path, keys[k].hf, config_key_names[k]);
  const cJSON *lt = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
  if (lt && seen[0] && check_layer_types(path, lt, out->n_layers, e) != 0) return -1;
  return 0;
}

int config_parse(const char *path, const char *text, size_t len, ckpt_layout layout,
                 gpt_config *out, char *defaulted, size_t defaulted_len, err *e) {
  if (defaulted && defaulted_len) defaulted[0] = '\0';
  gpt_config c;
  config_defaults(&c);
  const char *end = NULL;
  size_t at;
  const int bad = quote_json_scan(text, len, &at);
  if (bad)
    return err_set(e, EXIT_RUNTIME, "%s: a string with %s at byte %zu (keys must not contain NUL "
                   "or control characters)", path,
                   bad == 1 ? "an embedded NUL (\\u0000)" : "a raw control character", at);
  cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    long pos = at && at >= text && at <= text + len ? (long)(at - text) : -1;
    return err_set(e, EXIT_RUNTIME, "%s: not valid JSON (error near byte %ld of %zu)", path,
                   pos, len);
  }
  int rc = -1;
  for (const char *p = end; p < text + len; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      err_set(e, EXIT_RUNTIME, "%s: unexpected bytes after the JSON object (at byte %ld)", path,
              (long)(p - text));
      goto out;
    }
  if (!cJSON_IsObject(root)) {
    err_set(e, EXIT_RUNTIME, "%s: top level is %s, expected a JSON object", path,
            quote_json_kind(root));
    goto out;
  }
  int seen[CONFIG_N_KEYS] = {0};
  if ((layout == LAYOUT_HF ? parse_hf(path, root, &c, seen, e)
                           : parse_original(path, root, &c, seen, e)) != 0)
    goto out;
  for (int k = 0; k < CONFIG_N_KEYS; k++) {
    const char *name = layout == LAYOUT_HF ? keys[k].hf : config_key_names[k];
    if (seen[k]) continue;
    if (keys[k].required) {
      err_set(e, EXIT_RUNTIME, "%s: missing key '%s' (required: it defines tensor shapes)",
              path, name);
      goto out;
    }
    add_defaulted(defaulted, defaulted_len, name);
  }
  if (config_validate(&c, path, e) != 0) goto out;
  *out = c;
  rc = 0;
out:
  cJSON_Delete(root);
  return rc;
}

int config_validate(const gpt_config *c, const char *path, err *e) {
  const struct { const char *name; int v; } counts[] = {
      {"num_hidden_layers", c->n_layers},   {"num_experts", c->n_experts},
      {"experts_per_token", c->top_k},      {"vocab_size", c->vocab},
      {"hidden_size", c->hidden},           {"intermediate_size", c->intermediate},
      {"head_dim", c->head_dim},            {"num_attention_heads", c->n_heads},
      {"num_key_value_heads", c->n_kv_heads},
      {"initial_context_length", c->initial_context_length}};
  for (size_t i = 0; i < sizeof counts / sizeof *counts; i++)
    if (counts[i].v <= 0)
      return err_set(e, EXIT_RUNTIME, "%s: %s = %d, expected > 0", path, counts[i].name,
                     counts[i].v);
  if (c->hidden % 32)
    return err_set(e, EXIT_RUNTIME, "%s: hidden_size = %d, expected a multiple of 32 (MXFP4 "
                   "blocks of 32 along the contraction axis)", path, c->hidden);
  if (c->intermediate % 32)
    return err_set(e, EXIT_RUNTIME, "%s: intermediate_size = %d, expected a multiple of 32 "
                   "(MXFP4 blocks of 32 along the contraction axis)", path, c->intermediate);
  if (c->n_heads % c->n_kv_heads)
    return err_set(e, EXIT_RUNTIME, "%s: num_attention_heads = %d is not divisible by "
                   "num_key_value_heads = %d", path, c->n_heads, c->n_kv_heads);
  if (c->head_dim % 2)
    return err_set(e, EXIT_RUNTIME, "%s: head_dim = %d, expected an even number (RoPE rotates "
                   "halves)", path, c->head_dim);
  if (c->top_k > c->n_experts)
    return err_set(e, EXIT_RUNTIME, "%s: experts_per_token = %d exceeds num_experts = %d", path,
                   c->top_k, c->n_experts);
  if (c->sliding_window < 0)
    return err_set(e, EXIT_RUNTIME, "%s: sliding_window = %d, expected >= 0", path,
                   c->sliding_window);
  if (!(c->swiglu_limit > 0) || !isfinite(c->swiglu_limit))
    return err_set(e, EXIT_RUNTIME, "%s: swiglu_limit = %g, expected > 0", path, c->swiglu_limit);
  if (!(c->rope_theta > 0) || !isfinite(c->rope_theta))
    return err_set(e, EXIT_RUNTIME, "%s: rope_theta = %g, expected > 0", path, c->rope_theta);
  if (!(c->rope_scaling_factor >= 1) || !isfinite(c->rope_scaling_factor))
    return err_set(e, EXIT_RUNTIME, "%s: rope_scaling_factor = %g, expected >= 1", path,
                   c->rope_scaling_factor);
  if (!isfinite(c->rope_ntk_alpha) || !isfinite(c->rope_ntk_beta))
    return err_set(e, EXIT_RUNTIME, "%s: rope_ntk_alpha = %g, rope_ntk_beta = %g, expected "
                   "finite numbers", path, c->rope_ntk_alpha, c->rope_ntk_beta);
  /* Every tensor's element count (the largest are the expert blocks, E*2I*D/2 bytes) must fit
   * comfortably in 64 bits so that no later size computation can overflow. */
  const int64_t lim = (int64_t)1 << 60;
  int64_t a, b;
  if (__builtin_mul_overflow((int64_t)c->n_experts, 2 * (int64_t)c->intermediate, &a) ||
      __builtin_mul_overflow(a, (int64_t)c->hidden, &b) || b > lim ||
      __builtin_mul_overflow((int64_t)c->vocab, (int64_t)c->hidden, &a) || a > lim ||
      __builtin_mul_overflow(config_qkv_rows(c), (int64_t)c->hidden, &a) || a > lim ||
      __builtin_mul_overflow((int64_t)c->n_heads * c->head_dim, (int64_t)c->hidden, &a) ||
      a > lim)
    return err_set(e, EXIT_RUNTIME, "%s: sizes too large: a tensor would exceed 2^60 elements "
                   "(num_experts=%d, intermediate_size=%d, hidden_size=%d, vocab_size=%d)", path,
                   c->n_experts, c->intermediate, c->hidden, c->vocab);
  /* The widths the forward pass keeps in int (rows of qkv, H*Dh, 2I, and with them every
   * per-row index) must fit in one. */
  if (config_qkv_rows(c) > INT_MAX || (int64_t)c->n_heads * c->head_dim > INT_MAX ||
      2 * (int64_t)c->intermediate > INT_MAX)
    return err_set(e, EXIT_RUNTIME, "%s: widths too large: head_dim x (num_attention_heads + 2 x "
                   "num_key_value_heads) = %lld and 2 x intermediate_size = %lld must stay below "
                   "2^31", path, (long long)config_qkv_rows(c), 2 * (long long)c->intermediate);
  if (c->rope_scaling_factor > 1) {
    config_yarn y;
    config_yarn_params(c, &y);
    const double d2 = c->head_dim / 2.0;
    /* Written so that a NaN (e.g. rope_ntk_beta <= 0, rope_theta = 1) also fails. */
    if (!(0 < y.low && y.low < y.high && y.high < d2 - 1))
      return err_set(e, EXIT_RUNTIME, "%s: YaRN needs 0 < low < high < head_dim/2 - 1 = %g; "
                     "found low = %g, high = %g (from initial_context_length=%d, rope_ntk_beta=%g, "
                     "rope_ntk_alpha=%g, rope_theta=%g)", path, d2 - 1, y.low, y.high,
                     c->initial_context_length, c->rope_ntk_beta, c->rope_ntk_alpha,
                     c->rope_theta);
  }
  return 0;
}

void config_yarn_params(const gpt_config *c, config_yarn *out) {
  if (!(c->rope_scaling_factor > 1)) {
    out->low = out->high = 0;
    out->concentration = 1.0;
    return;
  }
  const double d2 = c->head_dim / 2.0, two_pi = 2 * M_PI, lt = log(c->rope_theta);
  out->concentration = 0.1 * log(c->rope_scaling_factor) + 1.0;
  out->low = d2 * log(c->initial_context_length / (c->rope_ntk_beta * two_pi)) / lt;
  out->high = d2 * log(c->initial_context_length / (c->rope_ntk_alpha * two_pi)) / lt;
}

int config_rope_inv_freq(const gpt_config *c, float *inv_freq, float *concentration, err *e) {
  const int d2 = c->head_dim / 2;
  float conc = 1.0f;
  for (int i = 0; i < d2; i++) {
    const float expo = (float)(2 * i) / (float)c->head_dim;
    const float freq = powf((float)c->rope_theta, expo);
    if (c->rope_scaling_factor > 1.0) {
      config_yarn y;
      config_yarn_params(c, &y);
      if (!(0 < y.low && y.low < y.high && y.high < d2 - 1))
        return err_set(e, EXIT_RUNTIME,
                       "YaRN: need 0 < low < high < head_dim/2 - 1, got low %g high %g", y.low,
                       y.high);
      conc = (float)y.concentration;
      const float interp = 1.0f / ((float)c->rope_scaling_factor * freq);
      const float extrap = 1.0f / freq;
      float ramp = ((float)i - (float)y.low) / (float)(y.high - y.low);
      ramp = ramp < 0.0f ? 0.0f : ramp > 1.0f ? 1.0f : ramp;
      const float mask = 1.0f - ramp;
      inv_freq[i] = interp * (1.0f - mask) + extrap * mask;
    } else {
      inv_freq[i] = 1.0f / freq;
    }
  }
  *concentration = conc;
  return 0;
}

void config_defaults(gpt_config *c) { config_preset_120b(c); }

void config_preset_120b(gpt_config *c) {
  *c = (gpt_config){.n_layers = 36, .n_experts = 128, .top_k = 4, .vocab = 201088,
                    .hidden = 2880, .intermediate = 2880, .head_dim = 64, .n_heads = 64,
                    .n_kv_heads = 8, .sliding_window = 128, .initial_context_length = 4096,
                    .swiglu_limit = 7.0, .rope_theta = 150000.0, .rope_scaling_factor = 32.0,
                    .rope_ntk_alpha = 1.0, .rope_ntk_beta = 32.0};
}

void config_preset_20b(gpt_config *c) {
  config_preset_120b(c);
  c->n_layers = 24;
  c->n_experts = 32;
}
