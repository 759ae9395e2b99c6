/* The plan's scratch prediction is what model_open really allocates, for several token and
 * position counts, on case-a and on a checkpoint with a vocabulary large enough for the
 * unembedding chunk to be the largest converted matrix. And the plan's prediction of the
 * scratch a rank writes follows the model's kernel crossovers: the conversion buffer and the
 * expert panels count only when a call can exceed MODEL_BF16_DIRECT_MAX_T tokens (resp. an
 * expert MODEL_MX4_DIRECT_MAX_T tokens), and then with their full size. */
#include "ckpt.h"
#include "model.h"
#include "model_impl.h"
#include "plan.h"
#include "testutil.h"

/* Written-scratch prediction of a 1-rank plan (leader + head) minus what does not depend on
 * the kernels (all allocations, the exchange buffers). */
static int64_t kernel_part(const gpt_config *c, int T) {
  plan p;
  err e = {0};
  if (plan_make(c, 1, 1, T, T, &p, &e) != 0) return INT64_MIN;
  const int64_t v = (int64_t)p.ranks[0].scratch_bytes - (int64_t)plan_scratch_bytes(c, T, T) -
                    (int64_t)plan_exchange_bytes(c, T, 1, 1, 1, 0);
  plan_free(&p);
  return v;
}

static void check_crossovers(const gpt_config *c) {
  const int64_t D = c->hidden, I = c->intermediate, V = c->vocab;
  const int64_t panels = 4 * 3 * I * D;
  int64_t conv = config_qkv_rows(c) * D;
  if (D * c->n_heads * c->head_dim > conv) conv = D * c->n_heads * c->head_dim;
  if (c->n_experts * D > conv) conv = c->n_experts * D;
  if ((V < MODEL_UNEMB_CHUNK ? V : MODEL_UNEMB_CHUNK) * D > conv) conv = (V < MODEL_UNEMB_CHUNK ? V : MODEL_UNEMB_CHUNK) * D;
  conv *= 4;
  int64_t prev = kernel_part(c, 1);
  TU_CHECK(prev == -(panels + conv), "T=1: the plan counts %lld bytes of converted weights or panels",
           (long long)(prev + panels + conv));
  for (int T = 2; T <= 200; T++) {
    const int64_t v = kernel_part(c, T);
    int64_t want = 0;
    if (T == MODEL_MX4_DIRECT_MAX_T + 1) want += panels;
    if (T == MODEL_BF16_DIRECT_MAX_T + 1) want += conv;
    TU_CHECK(v - prev == want, "T=%d: the plan's written scratch changes by %lld bytes, the model's "
             "crossovers imply %lld", T, (long long)(v - prev), (long long)want);
    prev = v;
  }
}

static void check(const char *dir) {
  ckpt *ck;
  err e = {0};
  if (ckpt_open(dir, &ck, &e) != 0) {
    TU_CHECK(0, "%s", e.msg);
    return;
  }
  const int sizes[][2] = {{1, 1}, {24, 24}, {24, 40}, {7, 300}};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    model_opts o = {.max_tokens = sizes[i][0], .max_seq = sizes[i][1]};
    model *m;
    if (model_open(ck, &o, &m, &e) != 0) {
      TU_CHECK(0, "%s", e.msg);
      continue;
    }
    uint64_t want = plan_scratch_bytes(ckpt_config(ck), o.max_tokens, o.max_seq);
    TU_CHECK(model_scratch_bytes(m) == want, "%s T=%d S=%d: model allocates %llu, plan says %llu",
             dir, o.max_tokens, o.max_seq, (unsigned long long)model_scratch_bytes(m),
             (unsigned long long)want);
    model_close(m);
  }
  check_crossovers(ckpt_config(ck));
  ckpt_close(ck);
}

int main(int argc, char **argv) {
  char path[4096];
  snprintf(path, sizeof path, "%s/original", tu_golden_dir());
  check(path);
  for (int i = 1; i < argc; i++) check(argv[i]);
  return tu_finish("test_plan_model");
}
