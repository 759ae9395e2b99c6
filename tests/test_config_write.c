/* config_to_json_original / config_to_json_hf: exact round trip through config_parse for the
 * presets and odd values, the published number spellings, and the buffer-too-small result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "synth.h"
#include "testutil.h"

static int same_config(const gpt_config *a, const gpt_config *b) {
  return a->n_layers == b->n_layers && a->n_experts == b->n_experts && a->top_k == b->top_k &&
         a->vocab == b->vocab && a->hidden == b->hidden && a->intermediate == b->intermediate &&
         a->head_dim == b->head_dim && a->n_heads == b->n_heads && a->n_kv_heads == b->n_kv_heads &&
         a->sliding_window == b->sliding_window &&
         a->initial_context_length == b->initial_context_length &&
         a->swiglu_limit == b->swiglu_limit && a->rope_theta == b->rope_theta &&
         a->rope_scaling_factor == b->rope_scaling_factor && a->rope_ntk_alpha == b->rope_ntk_alpha &&
         a->rope_ntk_beta == b->rope_ntk_beta;
}

static void round_trip(const char *what, const gpt_config *c) {
  char buf[65536], defaulted[256];
  for (int layout = 0; layout < 2; layout++) {
    int n = layout == LAYOUT_HF ? config_to_json_hf(c, buf, sizeof buf)
                                : config_to_json_original(c, buf, sizeof buf);
    TU_CHECK(n > 0 && (size_t)n == strlen(buf), "%s layout %d: wrote %d bytes", what, layout, n);
    if (n <= 0) continue;
    gpt_config back;
    err e = {0};
    int rc = config_parse(what, buf, (size_t)n, (ckpt_layout)layout, &back, defaulted,
                          sizeof defaulted, &e);
    TU_CHECK(rc == 0, "%s layout %d: parse failed: %s\n%s", what, layout, e.msg, buf);
    if (rc != 0) continue;
    TU_CHECK(same_config(c, &back), "%s layout %d: values differ after the round trip\n%s", what,
             layout, buf);
    TU_CHECK(defaulted[0] == '\0', "%s layout %d: keys defaulted: %s", what, layout, defaulted);
    /* too small by one byte: -1, never a truncated document */
    char small[65536];
    int m = layout == LAYOUT_HF ? config_to_json_hf(c, small, (size_t)n)
                                : config_to_json_original(c, small, (size_t)n);
    TU_CHECK(m == -1, "%s layout %d: buffer of %d bytes gave %d, expected -1", what, layout, n, m);
  }
}

int main(void) {
  gpt_config c;
  char buf[65536];
  err e = {0};

  config_preset_20b(&c);
  round_trip("20b", &c);
  config_to_json_original(&c, buf, sizeof buf);
  TU_CHECK(strstr(buf, "\"rope_theta\": 150000,\n") != NULL, "rope_theta spelling:\n%s", buf);
  TU_CHECK(strstr(buf, "\"swiglu_limit\": 7.0,\n") != NULL, "swiglu_limit spelling:\n%s", buf);
  TU_CHECK(strstr(buf, "\"rope_scaling_factor\": 32.0,\n") != NULL, "factor spelling:\n%s", buf);
  TU_CHECK(strstr(buf, "\"rope_ntk_alpha\": 1,\n") != NULL, "alpha spelling:\n%s", buf);
  TU_CHECK(strstr(buf, "\"rope_ntk_beta\": 32\n") != NULL, "beta spelling:\n%s", buf);
  /* the 16 keys in spec order */
  const char *p = buf;
  for (int k = 0; k < CONFIG_N_KEYS; k++) {
    char key[64];
    snprintf(key, sizeof key, "\"%s\":", config_key_names[k]);
    const char *q = strstr(p, key);
    TU_CHECK(q != NULL, "key %s missing or out of order", config_key_names[k]);
    if (q) p = q;
  }
  config_to_json_hf(&c, buf, sizeof buf);
  TU_CHECK(strstr(buf, "\"num_local_experts\": 32") && strstr(buf, "\"num_experts_per_tok\": 4") &&
               strstr(buf, "\"rope_type\": \"yarn\"") && strstr(buf, "\"quant_method\": \"mxfp4\"") &&
               strstr(buf, "\"model_type\": \"gpt_oss\"") && strstr(buf, "\"GptOssForCausalLM\"") &&
               strstr(buf, "\"rms_norm_eps\": 1e-05") && strstr(buf, "\"truncate\": false") &&
               strstr(buf, "\"max_position_embeddings\": 131072") &&
               strstr(buf, "\"tie_word_embeddings\": false") && strstr(buf, "\"attention_bias\": true"),
           "HF keys:\n%s", buf);

  config_preset_120b(&c);
  round_trip("120b", &c);

  synth_opts o;
  synth_opts_init(&o);
  TU_CHECK(synth_config(&o, &c, &e) == 0, "tiny preset: %s", e.msg);
  round_trip("tiny", &c);
  /* the tiny preset is golden case-a's shape: same bytes as its config.json */
  char path[1024];
  snprintf(path, sizeof path, "%s/original/config.json", tu_golden_dir());
  size_t glen = 0;
  char *golden = tu_read_file(path, &glen);
  TU_CHECK(golden != NULL, "cannot read %s", path);
  int n = config_to_json_original(&c, buf, sizeof buf);
  if (golden) {
    while (glen > 0 && golden[glen - 1] == '\n') glen--;
    TU_CHECK(n > 0 && (size_t)n == glen + 1 && memcmp(buf, golden, glen) == 0,
             "tiny config.json differs from %s:\n%s", path, buf);
  }
  free(golden);

  /* odd values: need every digit, or look integral and must stay floats */
  gpt_config odd;
  config_preset_20b(&odd);
  odd.n_layers = 3; odd.n_experts = 5; odd.top_k = 5; odd.vocab = 7; odd.hidden = 96;
  odd.intermediate = 32; odd.head_dim = 64; odd.n_heads = 6; odd.n_kv_heads = 3;
  odd.sliding_window = 0; odd.initial_context_length = 8192;
  odd.swiglu_limit = 0.1; odd.rope_theta = 150000.5; odd.rope_scaling_factor = 1.0;
  odd.rope_ntk_alpha = 1.0 / 3.0; odd.rope_ntk_beta = 31.999999999999996;
  round_trip("odd", &odd);
  odd.rope_scaling_factor = 32.000000000000007; odd.rope_ntk_alpha = 1; odd.rope_ntk_beta = 32;
  odd.swiglu_limit = 1e-300; odd.rope_theta = 1e22; odd.sliding_window = 1;
  round_trip("odd2", &odd);

  TU_CHECK(config_to_json_original(&odd, buf, 0) == -1, "zero-size buffer");
  return tu_finish("test_config_write");
}
