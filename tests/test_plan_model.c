/* The plan's scratch prediction is what model_open really allocates, for several token and
 * position counts, on case-a and on a checkpoint with a vocabulary large enough for the
 * unembedding chunk to be the largest converted matrix. */
#include "ckpt.h"
#include "model.h"
#include "plan.h"
#include "testutil.h"

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
  ckpt_close(ck);
}

int main(int argc, char **argv) {
  char path[4096];
  snprintf(path, sizeof path, "%s/original", tu_golden_dir());
  check(path);
  for (int i = 1; i < argc; i++) check(argv[i]);
  return tu_finish("test_plan_model");
}
