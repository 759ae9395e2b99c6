/* config: both spellings, integer-valued doubles, defaults, every constraint violated once. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "testutil.h"

static const char *const base_vals[CONFIG_N_KEYS] = {
    "4", "16", "4", "512", "64", "96", "7.0", "16", "8", "2", "8", "4096", "150000", "32.0", "1", "32"};

/* An original config.json with key `skip` left out (-1: none) and key `over` given as `val`. */
static void orig_json(char *buf, size_t len, int skip, int over, const char *val, const char *extra) {
  size_t o = (size_t)snprintf(buf, len, "{");
  int first = 1;
  for (int k = 0; k < CONFIG_N_KEYS; k++) {
    if (k == skip) continue;
    o += (size_t)snprintf(buf + o, len - o, "%s\"%s\": %s", first ? "" : ", ", config_key_names[k],
                          k == over ? val : base_vals[k]);
    first = 0;
  }
  if (extra) o += (size_t)snprintf(buf + o, len - o, ", %s", extra);
  snprintf(buf + o, len - o, "}\n");
}

static int cfg_eq(const gpt_config *a, const gpt_config *b) {
  return a->n_layers == b->n_layers && a->n_experts == b->n_experts && a->top_k == b->top_k &&
         a->vocab == b->vocab && a->hidden == b->hidden && a->intermediate == b->intermediate &&
         a->head_dim == b->head_dim && a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads &&
         a->sliding_window == b->sliding_window &&
         a->initial_context_length == b->initial_context_length &&
         a->swiglu_limit == b->swiglu_limit && a->rope_theta == b->rope_theta &&
         a->rope_scaling_factor == b->rope_scaling_factor &&
         a->rope_ntk_alpha == b->rope_ntk_alpha && a->rope_ntk_beta == b->rope_ntk_beta;
}

static int parse(const char *text, ckpt_layout lay, gpt_config *c, char *def, err *e) {
  err_clear(e);
  return config_parse("cfg/config.json", text, strlen(text), lay, c, def, 256, e);
}

static void expect_fail(const char *what, const char *text, ckpt_layout lay, const char *frag1,
                        const char *frag2) {
  gpt_config c;
  char def[256];
  err e;
  int rc = parse(text, lay, &c, def, &e);
  TU_CHECK(rc == -1 && e.code == 1 && strstr(e.msg, "cfg/config.json") && strstr(e.msg, frag1) &&
               (!frag2 || strstr(e.msg, frag2)),
           "%s: want '%s'/'%s', got rc %d '%s'", what, frag1, frag2 ? frag2 : "", rc, e.msg);
  printf("  %-34s -> %s\n", what, e.msg);
}

static void test_original(void) {
  char buf[2048], def[256];
  gpt_config c;
  err e;
  size_t n = 0;
  char path[1024];
  snprintf(path, sizeof path, "%s/original/config.json", tu_golden_dir());
  char *golden = tu_read_file(path, &n);
  TU_CHECK(golden != NULL, "read %s", path);
  if (golden) {
    int rc = config_parse(path, golden, n, LAYOUT_ORIGINAL, &c, def, sizeof def, &e);
    TU_CHECK(rc == 0, "case-a config: %s", e.msg);
    TU_CHECK(c.n_layers == 4 && c.n_experts == 16 && c.top_k == 4 && c.vocab == 512 &&
                 c.hidden == 64 && c.intermediate == 96 && c.head_dim == 16 && c.n_heads == 8 &&
                 c.n_kv_heads == 2 && c.sliding_window == 8 && c.initial_context_length == 4096,
             "case-a ints");
    TU_CHECK(c.swiglu_limit == 7.0 && c.rope_theta == 150000.0 && c.rope_scaling_factor == 32.0 &&
                 c.rope_ntk_alpha == 1.0 && c.rope_ntk_beta == 32.0, "case-a doubles");
    TU_CHECK(def[0] == '\0', "nothing defaulted: '%s'", def);
    config_yarn y;
    config_yarn_params(&c, &y);
    TU_CHECK(fabs(y.low - 2.0232) < 1e-4 && fabs(y.high - 4.3495) < 1e-4 &&
                 fabs(y.concentration - 1.346574) < 1e-6, "case-a yarn %g %g %g", y.low, y.high,
             y.concentration);
    free(golden);
  }
  /* Integer-valued doubles are accepted for integer keys; integers for double keys. */
  orig_json(buf, sizeof buf, -1, 4, "64.0", NULL);
  TU_CHECK(parse(buf, LAYOUT_ORIGINAL, &c, def, &e) == 0 && c.hidden == 64, "64.0: %s", e.msg);
  orig_json(buf, sizeof buf, -1, 12, "150000.0", NULL);
  TU_CHECK(parse(buf, LAYOUT_ORIGINAL, &c, def, &e) == 0 && c.rope_theta == 150000.0, "150000.0");
  orig_json(buf, sizeof buf, -1, 12, "1.5e5", NULL);
  TU_CHECK(parse(buf, LAYOUT_ORIGINAL, &c, def, &e) == 0 && c.rope_theta == 150000.0, "1.5e5");
  orig_json(buf, sizeof buf, -1, 10, "0", NULL);
  TU_CHECK(parse(buf, LAYOUT_ORIGINAL, &c, def, &e) == 0 && c.sliding_window == 0 &&
               !config_layer_is_sliding(&c, 0), "sliding_window 0 = full attention: %s", e.msg);
  orig_json(buf, sizeof buf, -1, 13, "1.0", NULL);
  TU_CHECK(parse(buf, LAYOUT_ORIGINAL, &c, def, &e) == 0, "no yarn: %s", e.msg);
  config_yarn y;
  config_yarn_params(&c, &y);
  TU_CHECK(y.concentration == 1.0, "no yarn concentration");

  /* Defaults: every non-shape key left out takes the 120B value and is reported. */
  static const int defaultable[] = {6, 10, 11, 12, 13, 14, 15};
  for (size_t i = 0; i < sizeof defaultable / sizeof *defaultable; i++) {
    int k = defaultable[i];
    orig_json(buf, sizeof buf, k, -1, NULL, NULL);
    int rc = parse(buf, LAYOUT_ORIGINAL, &c, def, &e);
    TU_CHECK(rc == 0 && strcmp(def, config_key_names[k]) == 0, "default %s: rc %d '%s' '%s'",
             config_key_names[k], rc, def, e.msg);
  }
  gpt_config d;
  config_defaults(&d);
  orig_json(buf, sizeof buf, 11, -1, NULL, NULL);
  TU_CHECK(parse(buf, LAYOUT_ORIGINAL, &c, def, &e) == 0 &&
               c.initial_context_length == d.initial_context_length, "default value");
  const char *only_shapes = "{\"num_hidden_layers\": 4, \"num_experts\": 16, \"experts_per_token\": 4,"
      " \"vocab_size\": 512, \"hidden_size\": 64, \"intermediate_size\": 96, \"head_dim\": 64,"
      " \"num_attention_heads\": 8, \"num_key_value_heads\": 2}";
  TU_CHECK(parse(only_shapes, LAYOUT_ORIGINAL, &c, def, &e) == 0 && c.sliding_window == 128 &&
               c.rope_theta == 150000.0 && c.swiglu_limit == 7.0 && c.rope_scaling_factor == 32.0 &&
               strstr(def, "swiglu_limit, sliding_window, initial_context_length, rope_theta"),
           "only shape keys: %s / %s", e.msg, def);
  TU_CHECK(config_parse("x", only_shapes, strlen(only_shapes), LAYOUT_ORIGINAL, &c, NULL, 0, &e) == 0,
           "defaulted may be NULL");

  printf("original-layout failures:\n");
  for (int k = 0; k < CONFIG_N_KEYS; k++) {
    if (k == 6 || k >= 10) continue;
    orig_json(buf, sizeof buf, k, -1, NULL, NULL);
    char what[64];
    snprintf(what, sizeof what, "missing %s", config_key_names[k]);
    expect_fail(what, buf, LAYOUT_ORIGINAL, config_key_names[k], "missing");
  }
  orig_json(buf, sizeof buf, -1, 4, "\"64\"", NULL);
  expect_fail("string hidden_size", buf, LAYOUT_ORIGINAL, "'hidden_size' is a string", NULL);
  orig_json(buf, sizeof buf, -1, 6, "true", NULL);
  expect_fail("bool swiglu_limit", buf, LAYOUT_ORIGINAL, "'swiglu_limit' is a boolean", NULL);
  orig_json(buf, sizeof buf, -1, 12, "null", NULL);
  expect_fail("null rope_theta", buf, LAYOUT_ORIGINAL, "'rope_theta' is null", NULL);
  orig_json(buf, sizeof buf, -1, 0, "[4]", NULL);
  expect_fail("array num_hidden_layers", buf, LAYOUT_ORIGINAL, "'num_hidden_layers' is an array", NULL);
  orig_json(buf, sizeof buf, -1, 0, "4.5", NULL);
  expect_fail("fractional layers", buf, LAYOUT_ORIGINAL, "'num_hidden_layers' = 4.5", "integer");
  orig_json(buf, sizeof buf, -1, 3, "3000000000", NULL);
  expect_fail("vocab beyond int", buf, LAYOUT_ORIGINAL, "'vocab_size'", "2147483647");
  orig_json(buf, sizeof buf, -1, 1, "0", NULL);
  expect_fail("zero experts", buf, LAYOUT_ORIGINAL, "'num_experts' = 0", NULL);
  orig_json(buf, sizeof buf, -1, 8, "-8", NULL);
  expect_fail("negative heads", buf, LAYOUT_ORIGINAL, "'num_attention_heads' = -8", NULL);
  orig_json(buf, sizeof buf, -1, 10, "-1", NULL);
  expect_fail("negative sliding_window", buf, LAYOUT_ORIGINAL, "'sliding_window' = -1", NULL);
  orig_json(buf, sizeof buf, -1, -1, NULL, "\"rms_norm_eps\": 1e-5");
  expect_fail("unknown key", buf, LAYOUT_ORIGINAL, "unknown key 'rms_norm_eps'", NULL);
  orig_json(buf, sizeof buf, -1, -1, NULL, "\"num_local_experts\": 16");
  expect_fail("HF key in original", buf, LAYOUT_ORIGINAL, "'num_local_experts' is Hugging Face", NULL);
  orig_json(buf, sizeof buf, -1, -1, NULL, "\"hidden_size\": 64");
  expect_fail("duplicate key", buf, LAYOUT_ORIGINAL, "'hidden_size' given twice", NULL);
  orig_json(buf, sizeof buf, -1, 12, "1e999", NULL);
  expect_fail("infinite rope_theta", buf, LAYOUT_ORIGINAL, "rope_theta", "finite");
  expect_fail("bad JSON", "{\"num_hidden_layers\": 4,", LAYOUT_ORIGINAL, "not valid JSON", NULL);
  expect_fail("not an object", "[1, 2]", LAYOUT_ORIGINAL, "expected a JSON object", NULL);
  expect_fail("trailing bytes", "{} x", LAYOUT_ORIGINAL, "unexpected bytes", NULL);

  /* Every constraint of config.h violated once (through config_parse). */
  printf("constraint failures:\n");
  orig_json(buf, sizeof buf, -1, 4, "48", NULL);
  expect_fail("hidden not multiple of 32", buf, LAYOUT_ORIGINAL, "hidden_size = 48", "multiple of 32");
  orig_json(buf, sizeof buf, -1, 5, "100", NULL);
  expect_fail("intermediate not multiple of 32", buf, LAYOUT_ORIGINAL, "intermediate_size = 100",
              "multiple of 32");
  orig_json(buf, sizeof buf, -1, 9, "3", NULL);
  expect_fail("heads % kv heads", buf, LAYOUT_ORIGINAL, "num_attention_heads = 8", "num_key_value_heads = 3");
  orig_json(buf, sizeof buf, -1, 7, "15", NULL);
  expect_fail("odd head_dim", buf, LAYOUT_ORIGINAL, "head_dim = 15", "even");
  orig_json(buf, sizeof buf, -1, 2, "17", NULL);
  expect_fail("top-k > experts", buf, LAYOUT_ORIGINAL, "experts_per_token = 17", "num_experts = 16");
  orig_json(buf, sizeof buf, -1, 6, "0", NULL);
  expect_fail("swiglu_limit 0", buf, LAYOUT_ORIGINAL, "swiglu_limit = 0", "> 0");
  orig_json(buf, sizeof buf, -1, 12, "-1", NULL);
  expect_fail("rope_theta negative", buf, LAYOUT_ORIGINAL, "rope_theta = -1", "> 0");
  orig_json(buf, sizeof buf, -1, 13, "0.5", NULL);
  expect_fail("rope_scaling_factor < 1", buf, LAYOUT_ORIGINAL, "rope_scaling_factor = 0.5", ">= 1");
  orig_json(buf, sizeof buf, -1, 15, "0.5", NULL);
  expect_fail("yarn high <= low", buf, LAYOUT_ORIGINAL, "0 < low < high", "rope_ntk_beta=0.5");
  orig_json(buf, sizeof buf, -1, 11, "64", NULL);
  expect_fail("yarn low <= 0", buf, LAYOUT_ORIGINAL, "0 < low < high", "initial_context_length=64");
  orig_json(buf, sizeof buf, -1, 12, "1", NULL);
  expect_fail("yarn rope_theta 1 (NaN)", buf, LAYOUT_ORIGINAL, "0 < low < high", NULL);
  orig_json(buf, sizeof buf, -1, 14, "0.001", NULL);
  expect_fail("yarn high >= d/2-1", buf, LAYOUT_ORIGINAL, "0 < low < high", "rope_ntk_alpha=0.001");
  orig_json(buf, sizeof buf, -1, 5, "2147483616", "\"num_experts\": 16");
  expect_fail("duplicate num_experts", buf, LAYOUT_ORIGINAL, "given twice", NULL);
  /* Sizes that would overflow: checked directly (the JSON route is covered above). */
  gpt_config big;
  config_preset_120b(&big);
  big.n_experts = 1 << 30;
  big.intermediate = 2147483616;
  err e2 = {0};
  TU_CHECK(config_validate(&big, "big.json", &e2) == -1 && strstr(e2.msg, "too large"),
           "overflowing sizes: %s", e2.msg);
  big.n_experts = 0;
  err_clear(&e2);
  TU_CHECK(config_validate(&big, "big.json", &e2) == -1 && strstr(e2.msg, "num_experts = 0"),
           "count 0: %s", e2.msg);
}

static const char *hf_text =
    "{\"architectures\": [\"GptOssForCausalLM\"], \"model_type\": \"gpt_oss\","
    " \"num_hidden_layers\": 4, \"num_local_experts\": 16, \"num_experts_per_tok\": 4,"
    " \"vocab_size\": 512, \"hidden_size\": 64, \"intermediate_size\": 96, \"swiglu_limit\": 7.0,"
    " \"head_dim\": 16, \"num_attention_heads\": 8, \"num_key_value_heads\": 2,"
    " \"sliding_window\": 8, \"rope_theta\": 150000, \"rms_norm_eps\": 1e-05,"
    " \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 32.0, \"beta_fast\": 32.0,"
    " \"beta_slow\": 1.0, \"original_max_position_embeddings\": 4096, \"truncate\": false},"
    " \"layer_types\": [\"sliding_attention\", \"full_attention\", \"sliding_attention\","
    " \"full_attention\"], \"max_position_embeddings\": 131072, \"tie_word_embeddings\": false}";

static char *replace(const char *s, const char *from, const char *to) {
  const char *p = strstr(s, from);
  if (!p) return NULL;
  size_t n = strlen(s) - strlen(from) + strlen(to) + 1;
  char *o = malloc(n);
  snprintf(o, n, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
  return o;
}

static void hf_fail(const char *what, const char *from, const char *to, const char *frag) {
  char *t = replace(hf_text, from, to);
  TU_CHECK(t != NULL, "%s: pattern '%s'", what, from);
  if (t) expect_fail(what, t, LAYOUT_HF, frag, NULL);
  free(t);
}

static void test_hf(void) {
  gpt_config c, o;
  char def[256];
  err e;
  TU_CHECK(parse(hf_text, LAYOUT_HF, &c, def, &e) == 0, "HF: %s", e.msg);
  char buf[2048];
  orig_json(buf, sizeof buf, -1, -1, NULL, NULL);
  TU_CHECK(parse(buf, LAYOUT_ORIGINAL, &o, def, &e) == 0, "orig");
  TU_CHECK(cfg_eq(&c, &o), "HF config equals the original one field by field");
  TU_CHECK(parse(hf_text, LAYOUT_ORIGINAL, &o, def, &e) == -1 &&
               strstr(e.msg, "Hugging Face spelling"), "HF text as original: %s", e.msg);
  printf("Hugging Face failures:\n");
  expect_fail("original config as HF", buf, LAYOUT_HF, "missing key 'num_local_experts'",
              "found 'num_experts'");
  hf_fail("layer_types wrong order", "[\"sliding_attention\", \"full_attention\"",
          "[\"full_attention\", \"full_attention\"", "layer_types[0]");
  hf_fail("layer_types too short", ", \"full_attention\"], \"max", "], \"max", "3 entries, expected 4");
  hf_fail("layer_types not array", "\"layer_types\": [", "\"layer_types\": 1, \"x\": [",
          "'layer_types' is a number");
  hf_fail("rope_type not yarn", "\"yarn\"", "\"linear\"", "rope_scaling.rope_type");
  hf_fail("rope_scaling null", "\"rope_scaling\": {", "\"rope_scaling\": null, \"y\": {",
          "'rope_scaling' is null");
  hf_fail("factor string", "\"factor\": 32.0", "\"factor\": \"32\"", "'rope_scaling.factor' is a string");
  hf_fail("num_local_experts missing", "\"num_local_experts\": 16,", "", "missing key 'num_local_experts'");
  hf_fail("top-k > experts", "\"num_experts_per_tok\": 4", "\"num_experts_per_tok\": 32",
          "experts_per_token = 32");
  /* Unknown keys are ignored; missing rope_scaling takes defaults and says so. */
  char *t = replace(hf_text, "\"rope_scaling\"", "\"rope_scaling_unused\"");
  TU_CHECK(t && parse(t, LAYOUT_HF, &c, def, &e) == 0 &&
               strstr(def, "rope_scaling.original_max_position_embeddings") &&
               strstr(def, "rope_scaling.factor") && c.rope_scaling_factor == 32.0,
           "HF without rope_scaling: %s / %s", e.msg, def);
  free(t);
  t = replace(hf_text, ", \"layer_types\": [\"sliding_attention\", \"full_attention\", "
                       "\"sliding_attention\", \"full_attention\"]", "");
  TU_CHECK(t && parse(t, LAYOUT_HF, &c, def, &e) == 0, "HF without layer_types: %s", e.msg);
  free(t);
}

static void test_presets(void) {
  gpt_config a, b, d;
  config_preset_20b(&a);
  config_preset_120b(&b);
  config_defaults(&d);
  err e = {0};
  TU_CHECK(cfg_eq(&b, &d), "defaults are the 120B values");
  TU_CHECK(a.n_layers == 24 && a.n_experts == 32 && b.n_layers == 36 && b.n_experts == 128, "layers/experts");
  TU_CHECK(a.vocab == 201088 && a.hidden == 2880 && a.intermediate == 2880 && a.head_dim == 64 &&
               a.n_heads == 64 && a.n_kv_heads == 8 && a.sliding_window == 128 && a.top_k == 4 &&
               a.initial_context_length == 4096 && a.swiglu_limit == 7.0 && a.rope_theta == 150000.0 &&
               a.rope_scaling_factor == 32.0 && a.rope_ntk_alpha == 1.0 && a.rope_ntk_beta == 32.0,
           "20b values");
  TU_CHECK(config_validate(&a, "20b", &e) == 0 && config_validate(&b, "120b", &e) == 0, "presets valid: %s", e.msg);
  TU_CHECK(config_qkv_rows(&a) == 5120, "qkv rows");
  config_yarn y;
  config_yarn_params(&a, &y);
  TU_CHECK(fabs(y.low - 8.092779) < 1e-6 && fabs(y.high - 17.398025) < 1e-6 &&
               y.concentration == 0.1 * log(32.0) + 1.0, "real-model yarn %.9g %.9g %.17g", y.low,
           y.high, y.concentration);
}

int main(void) {
  test_original();
  test_hf();
  test_presets();
  return tu_finish("test_config");
}
