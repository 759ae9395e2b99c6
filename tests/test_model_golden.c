/* The forward pass against golden/case-a (docs/gpt-oss-spec.md section 13):
 *   fp32 vs /fp32: every captured tensor within 1e-5 x max|ref|, identical top-k sets,
 *                  top-k weights per expert id; RoPE tables vs /rope within 1e-5.
 *   bf16 vs /bf16: every captured tensor within 1e-2 x max|ref|, identical top-k sets; the
 *                  bit-exact fraction of the logits is reported. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "model.h"
#include "test_model_check.h"
#include "testutil.h"
#include "trace.h"

static float *read_f32(const char *path, const char *name, size_t *n) {
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t d = f >= 0 ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
  float *v = NULL;
  if (d >= 0) {
    hid_t s = H5Dget_space(d);
    *n = (size_t)H5Sget_simple_extent_npoints(s);
    v = malloc(*n * sizeof(float));
    if (v && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) {
      free(v);
      v = NULL;
    }
    H5Sclose(s);
    H5Dclose(d);
  }
  if (f >= 0) H5Fclose(f);
  return v;
}

/* Run the forward over the golden prompt at `prec`, into tr (allocated here). */
static int run_forward(const ckpt *ck, const trace *ref, model_precision prec, trace *tr,
                       model **mout) {
  err e = {0};
  const gpt_config *c = ckpt_config(ck);
  model *m = NULL;
  model_kv kv = {0};
  model_opts o = {.max_tokens = ref->T, .max_seq = ref->T, .precision = prec};
  int rc = model_open(ck, &o, &m, &e);
  if (rc == 0) rc = model_kv_init(c, 0, c->n_layers, ref->T, &kv, &e);
  if (rc == 0) rc = trace_alloc(tr, c, ref->T, c->n_layers, &e);
  if (rc == 0) {
    memcpy(tr->input_ids, ref->input_ids, (size_t)ref->T * sizeof(int32_t));
    model_capture cap;
    trace_capture(tr, &cap);
    rc = model_forward(m, &kv, tr->input_ids, tr->T, 0, c->n_layers, 1, tr->logits, &cap, &e);
  }
  TU_CHECK(rc == 0, "forward failed: %s", e.msg);
  model_kv_free(&kv);
  *mout = m;
  return rc;
}

int main(void) {
  char dir[4096], h5[4096];
  snprintf(dir, sizeof dir, "%s/original", tu_golden_dir());
  snprintf(h5, sizeof h5, "%s/golden.h5", tu_golden_dir());
  err e = {0};
  ckpt *ck = NULL;
  if (ckpt_open(dir, &ck, &e) != 0) {
    fprintf(stderr, "cannot open %s: %s\n", dir, e.msg);
    return 1;
  }

  /* fp32 */
  trace ref = {0}, got = {0};
  model *m = NULL;
  TU_CHECK(trace_read(h5, "/fp32", &ref, &e) == 0, "read golden: %s", e.msg);
  if (ref.T > 0 && run_forward(ck, &ref, MODEL_FP32, &got, &m) == 0) {
    double w = model_check_traces("fp32", &got, &ref, 1e-5, 1);
    printf("fp32: worst relative error over all tensors %.3e (tolerance 1e-5)\n", w);
    const float *cs, *sn, *inv;
    model_rope_tables(m, &cs, &sn, &inv);
    const int d2 = model_config(m)->head_dim / 2;
    size_t n = 0;
    float *gc = read_f32(h5, "/rope/cos", &n);
    TU_CHECK(gc && n == (size_t)ref.T * d2, "golden /rope/cos");
    if (gc) {
      double r = model_check_rel(cs, gc, n);
      printf("fp32   rope/cos                         rel %.3e  (tol 1e-05)\n", r);
      TU_CHECK(r <= 1e-5, "rope/cos rel %.3e above 1e-5", r);
    }
    float *gs = read_f32(h5, "/rope/sin", &n);
    TU_CHECK(gs && n == (size_t)ref.T * d2, "golden /rope/sin");
    if (gs) {
      double r = model_check_rel(sn, gs, n);
      printf("fp32   rope/sin                         rel %.3e  (tol 1e-05)\n", r);
      TU_CHECK(r <= 1e-5, "rope/sin rel %.3e above 1e-5", r);
    }
    float *gi = read_f32(h5, "/rope/inv_freq", &n);
    TU_CHECK(gi && n == (size_t)d2, "golden /rope/inv_freq");
    if (gi) {
      double r = model_check_rel(inv, gi, n);
      printf("fp32   rope/inv_freq                    rel %.3e  (tol 1e-05)\n", r);
      TU_CHECK(r <= 1e-5, "rope/inv_freq rel %.3e above 1e-5", r);
    }
    free(gc);
    free(gs);
    free(gi);
  }
  model_close(m);
  trace_free(&ref);
  trace_free(&got);

  /* bf16 emulation */
  m = NULL;
  TU_CHECK(trace_read(h5, "/bf16", &ref, &e) == 0, "read golden: %s", e.msg);
  if (ref.T > 0 && run_forward(ck, &ref, MODEL_BF16, &got, &m) == 0) {
    double w = model_check_traces("bf16", &got, &ref, 1e-2, 1);
    size_t same = 0, n = (size_t)ref.T * ref.V;
    for (size_t i = 0; i < n; i++) same += got.logits[i] == ref.logits[i];
    printf("bf16: worst relative error %.3e (tolerance 1e-2); logits bit-exact: %zu of %zu (%.2f %%)\n",
           w, same, n, 100.0 * same / n);
  }
  model_close(m);
  trace_free(&ref);
  trace_free(&got);
  ckpt_close(ck);
  return tu_finish("test_model_golden");
}
