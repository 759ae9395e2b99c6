/* ckpt: case-a as a catalog (63 tensors, lookups, config), and a Hugging Face copy of case-a
 * made here (spec section 11: renamed tensors, q/k/v row split, HF config.json, two shards)
 * that must give identical fp32 rows and identical MXFP4 bytes. */
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "stwrite.h"
#include "testutil.h"

static void check_case_a(const ckpt *c) {
  const gpt_config *g = ckpt_config(c);
  TU_CHECK(g->n_layers == 4 && g->n_experts == 16 && g->top_k == 4 && g->vocab == 512 &&
               g->hidden == 64 && g->intermediate == 96 && g->head_dim == 16 && g->n_heads == 8 &&
               g->n_kv_heads == 2 && g->sliding_window == 8 && g->rope_theta == 150000.0,
           "case-a config");
  TU_CHECK(ckpt_n_tensors(c) == 63, "63 logical tensors, got %zu", ckpt_n_tensors(c));
  size_t i = 0;
  for (int r = 0; r < CK_FIRST_LAYER_ROLE; r++, i++)
    TU_CHECK(ckpt_tensor_at(c, i) == ckpt_tensor_find(c, 99, (ckpt_role)r), "global %d order", r);
  for (int l = 0; l < 4; l++)
    for (int r = CK_FIRST_LAYER_ROLE; r < CK_N_ROLES; r++, i++) {
      const ckpt_tensor *t = ckpt_tensor_find(c, l, (ckpt_role)r);
      TU_CHECK(t && t == ckpt_tensor_at(c, i), "layer %d role %d order", l, r);
      if (!t) continue;
      char name[96];
      ckpt_role_name(l, (ckpt_role)r, name, sizeof name);
      st_dtype dt;
      int64_t shape[4];
      int nd = ckpt_role_shape(g, (ckpt_role)r, &dt, shape);
      TU_CHECK(strcmp(t->name, name) == 0 && t->layer == l && t->role == (ckpt_role)r, "%s", name);
      TU_CHECK(t->dtype == dt && t->n_dims == nd && memcmp(t->shape, shape, (size_t)nd * 8) == 0,
               "%s dtype/shape", name);
      uint64_t n = st_dtype_size(dt);
      for (int d = 0; d < nd; d++) n *= (uint64_t)shape[d];
      TU_CHECK(t->n_bytes == n, "%s bytes", name);
    }
  TU_CHECK(ckpt_tensor_at(c, 63) == NULL && ckpt_tensor_find(c, 4, CK_SINKS) == NULL &&
               ckpt_tensor_find(c, -1, CK_SINKS) == NULL, "out of range lookups");
  const ckpt_tensor *q = ckpt_tensor_find(c, 3, CK_QKV_W);
  TU_CHECK(q && q->shape[0] == 192 && q->shape[1] == 64, "qkv rows 192");
  const ckpt_tensor *emb = ckpt_tensor_find(c, -1, CK_EMBEDDING);
  TU_CHECK(emb && emb->layer == -1 && strcmp(emb->name, "embedding.weight") == 0, "embedding");
  TU_CHECK(strcmp(ckpt_defaulted_keys(c), "") == 0, "nothing defaulted");
}

static void test_original(void) {
  ckpt *c = NULL;
  err e = {0};
  /* The case-a root has no safetensors: the original/ subdirectory is read. */
  int rc = ckpt_open(tu_golden_dir(), &c, &e);
  TU_CHECK(rc == 0, "open %s: %s", tu_golden_dir(), e.msg);
  if (rc) return;
  TU_CHECK(ckpt_get_layout(c) == LAYOUT_ORIGINAL, "layout");
  const char *d = ckpt_dir(c);
  TU_CHECK(strlen(d) > 9 && strcmp(d + strlen(d) - 9, "/original") == 0, "dir %s", d);
  TU_CHECK(strstr(ckpt_config_path(c), "original/config.json") != NULL, "config path");
  TU_CHECK(ckpt_n_files(c) == 1 && strstr(st_file_path(ckpt_file(c, 0)), "model.safetensors"),
           "one file");
  TU_CHECK(ckpt_file(c, 1) == NULL, "file index out of range");
  check_case_a(c);
  for (size_t i = 0; i < ckpt_n_tensors(c); i++) {
    const ckpt_tensor *t = ckpt_tensor_at(c, i);
    TU_CHECK(t->n_parts == 1 && t->file_index[0] == 0 && t->part[0] &&
                 strcmp(t->part[0]->name, t->name) == 0, "%s single part", t->name);
  }
  /* fp32 conversion against the raw little-endian bf16 bytes. */
  const ckpt_tensor *w = ckpt_tensor_find(c, 1, CK_OUT_W);
  float *f = malloc(64 * 128 * sizeof *f);
  TU_CHECK(ckpt_tensor_f32(w, f, &e) == 0, "f32: %s", e.msg);
  const uint8_t *raw = ckpt_tensor_data(w);
  int same = 1;
  for (int i = 0; i < 64 * 128; i++) same &= f[i] == st_bf16_to_f32((uint16_t)(raw[2 * i] | raw[2 * i + 1] << 8));
  TU_CHECK(same, "out.weight fp32 values");
  float rows[3 * 128];
  TU_CHECK(ckpt_tensor_rows_f32(w, 61, 3, rows, &e) == 0 && memcmp(rows, f + 61 * 128, sizeof rows) == 0,
           "rows 61..63");
  TU_CHECK(ckpt_tensor_rows_f32(w, 62, 3, rows, &e) == -1 && strstr(e.msg, "out of range"),
           "rows past the end: %s", e.msg);
  err_clear(&e);
  TU_CHECK(ckpt_tensor_rows_f32(ckpt_tensor_find(c, 0, CK_MLP1_SCALES), 0, 1, rows, &e) == -1 &&
               strstr(e.msg, "U8"), "U8 to f32 refused: %s", e.msg);
  float sinks[8];
  err_clear(&e);
  TU_CHECK(ckpt_tensor_rows_f32(ckpt_tensor_find(c, 2, CK_SINKS), 2, 3, sinks, &e) == 0,
           "1-D rows: %s", e.msg);
  free(f);
  ckpt_close(c);
}

static const char *hf_config =
    "{\n  \"architectures\": [\"GptOssForCausalLM\"],\n  \"model_type\": \"gpt_oss\",\n"
    "  \"num_hidden_layers\": 4,\n  \"num_local_experts\": 16,\n  \"num_experts_per_tok\": 4,\n"
    "  \"vocab_size\": 512,\n  \"hidden_size\": 64,\n  \"intermediate_size\": 96,\n"
    "  \"swiglu_limit\": 7.0,\n  \"head_dim\": 16,\n  \"num_attention_heads\": 8,\n"
    "  \"num_key_value_heads\": 2,\n  \"sliding_window\": 8,\n  \"rope_theta\": 150000,\n"
    "  \"rms_norm_eps\": 1e-05,\n  \"attention_bias\": true,\n  \"tie_word_embeddings\": false,\n"
    "  \"max_position_embeddings\": 131072,\n"
    "  \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 32.0, \"beta_fast\": 32.0,\n"
    "    \"beta_slow\": 1.0, \"original_max_position_embeddings\": 4096, \"truncate\": false},\n"
    "  \"layer_types\": [\"sliding_attention\", \"full_attention\", \"sliding_attention\",\n"
    "    \"full_attention\"]\n}\n";

/* Write the HF copy of the original checkpoint c into dir: globals + layers 0-1 in the first
 * shard, layers 2-3 in the second, tensors in a different order than the original file. */
static int write_hf(const ckpt *c, const char *dir) {
  const gpt_config *g = ckpt_config(c);
  const size_t n_max = ckpt_n_tensors(c) + 4 * (size_t)g->n_layers;
  tw_tensor *t = calloc(2 * n_max, sizeof *t);
  char (*names)[96] = calloc(n_max, 96);
  size_t n[2] = {0, 0};
  tw_tensor *shard[2] = {t, t + n_max};
  size_t k = 0;
  for (size_t i = ckpt_n_tensors(c); i-- > 0;) {   /* reversed order on purpose */
    const ckpt_tensor *lt = ckpt_tensor_at(c, i);
    int s = lt->layer >= 2;
    char hn[3][96];
    int np = ckpt_role_hf_names(lt->layer, lt->role, hn);
    const uint8_t *data = ckpt_tensor_data(lt);
    const int64_t rows[3] = {(int64_t)g->n_heads * g->head_dim, (int64_t)g->n_kv_heads * g->head_dim,
                             (int64_t)g->n_kv_heads * g->head_dim};
    const uint64_t row_bytes = lt->n_bytes / (uint64_t)lt->shape[0];
    for (int p = 0; p < np; p++) {
      memcpy(names[k], hn[p], 96);
      tw_tensor *o = &shard[s][n[s]++];
      *o = (tw_tensor){names[k++], st_dtype_name(lt->dtype), lt->n_dims, {0}, data, lt->n_bytes};
      memcpy(o->shape, lt->shape, sizeof lt->shape);
      if (np == 3) {
        o->shape[0] = rows[p];
        o->n_bytes = (size_t)(rows[p] * (int64_t)row_bytes);
        data += o->n_bytes;
      }
    }
  }
  char path[1024];
  int rc = 0;
  for (int s = 0; s < 2; s++) {
    snprintf(path, sizeof path, "%s/model-0000%d-of-00001.safetensors", dir, s);
    rc |= tw_write(path, shard[s], n[s], s ? NULL : "{\"format\":\"pt\"}", 0);
  }
  snprintf(path, sizeof path, "%s/config.json", dir);
  rc |= tu_write_file(path, hf_config, strlen(hf_config));
  free(names);
  free(t);
  return rc;
}

static void test_hf(void) {
  ckpt *o = NULL, *h = NULL;
  err e = {0};
  if (ckpt_open(tu_golden_dir(), &o, &e) != 0) {
    TU_CHECK(0, "open case-a: %s", e.msg);
    return;
  }
  char *dir = tu_mkdtemp("test_ckpt_hf");
  TU_CHECK(dir && write_hf(o, dir) == 0, "write HF copy");
  int rc = dir ? ckpt_open(dir, &h, &e) : -1;
  TU_CHECK(rc == 0, "open HF copy: %s", e.msg);
  if (rc == 0) {
    TU_CHECK(ckpt_get_layout(h) == LAYOUT_HF && ckpt_n_files(h) == 2, "HF layout, 2 files");
    check_case_a(h);
    const gpt_config *a = ckpt_config(o), *b = ckpt_config(h);
    TU_CHECK(a->initial_context_length == b->initial_context_length &&
                 a->rope_scaling_factor == b->rope_scaling_factor &&
                 a->rope_ntk_alpha == b->rope_ntk_alpha && a->rope_ntk_beta == b->rope_ntk_beta &&
                 a->swiglu_limit == b->swiglu_limit, "HF config values");
    long long n_bf16 = 0, n_u8 = 0;
    for (size_t i = 0; i < ckpt_n_tensors(o); i++) {
      const ckpt_tensor *x = ckpt_tensor_at(o, i), *y = ckpt_tensor_at(h, i);
      TU_CHECK(strcmp(x->name, y->name) == 0 && x->n_bytes == y->n_bytes, "%s", x->name);
      TU_CHECK(y->n_parts == ((x->role == CK_QKV_W || x->role == CK_QKV_B) ? 3 : 1), "%s parts", x->name);
      TU_CHECK(y->file_index[0] == (x->layer >= 2), "%s file", x->name);
      char hn[3][96];
      int np = ckpt_role_hf_names(x->layer, x->role, hn);
      for (int p = 0; p < np; p++)
        TU_CHECK(strcmp(y->part[p]->name, hn[p]) == 0, "%s part %d name", x->name, p);
      if (x->dtype == ST_U8) {
        TU_CHECK(memcmp(ckpt_tensor_data(x), ckpt_tensor_data(y), x->n_bytes) == 0,
                 "%s MXFP4 bytes", x->name);
        n_u8++;
        continue;
      }
      const size_t ne = x->n_bytes / 2;
      float *fx = malloc(ne * sizeof *fx), *fy = malloc(ne * sizeof *fy);
      TU_CHECK(ckpt_tensor_f32(x, fx, &e) == 0 && ckpt_tensor_f32(y, fy, &e) == 0, "%s", e.msg);
      TU_CHECK(memcmp(fx, fy, ne * sizeof *fx) == 0, "%s fp32 identical", x->name);
      /* Row windows crossing the q|k and k|v boundaries (rows 128 and 160). */
      const int64_t cols = x->n_dims == 2 ? x->shape[1] : 1;
      for (int64_t r0 = 0; r0 + 7 <= x->shape[0]; r0 += 11) {
        err_clear(&e);
        TU_CHECK(ckpt_tensor_rows_f32(y, r0, 7, fy, &e) == 0 &&
                     memcmp(fy, fx + r0 * cols, (size_t)(7 * cols) * sizeof *fy) == 0,
                 "%s rows [%lld, +7): %s", x->name, (long long)r0, e.msg);
      }
      n_bf16++;
      free(fx);
      free(fy);
    }
    printf("HF copy: %lld BF16 tensors fp32-identical, %lld MXFP4 tensors byte-identical\n", n_bf16, n_u8);
    ckpt_close(h);
  }
  if (dir) {
    tu_rm_rf(dir);
    free(dir);
  }
  ckpt_close(o);
}

int main(void) {
  test_original();
  test_hf();
  return tu_finish("test_ckpt");
}
