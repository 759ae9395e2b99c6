#include "export_ort.h"

#include <stdio.h>
#include <string.h>

#include "atomic.h"
#include "mx4.h"

int export_ort_check(const gpt_config *c, const export_opts *o, err *e) {
  if (o->experts_fp32)
    return err_set(e, EXIT_USAGE, "--target ort holds the MXFP4 experts exactly as int8 codes "
                   "for QMoE; --weights fp32 is for the standard target");
  if (o->sub_model)
    return err_set(e, EXIT_USAGE, "--target ort exports the whole decoder; --layers A:B "
                   "sub-models are made for the standard target");
  /* GroupQueryAttention: query heads in groups over the kv heads (config_validate checks it,
   * but the kernel's own message would be far less clear) */
  if (c->n_kv_heads < 1 || c->n_heads % c->n_kv_heads != 0)
    return err_set(e, EXIT_USAGE, "--target ort: GroupQueryAttention needs the query heads (%d) "
                   "to be a multiple of the key/value heads (%d)", c->n_heads, c->n_kv_heads);
  /* its CPU kernel's vector loops */
  if (c->head_dim % 8 != 0)
    return err_set(e, EXIT_USAGE, "--target ort: ONNX Runtime's GroupQueryAttention needs "
                   "head_dim to be a multiple of 8 (it is %d); use the standard target", c->head_dim);
  /* QMoE block_size 32 runs over the input dimension of each expert matrix */
  if (c->hidden % 32 != 0 || c->intermediate % 32 != 0)
    return err_set(e, EXIT_USAGE, "--target ort: QMoE's 32-value blocks need hidden_size (%d) "
                   "and intermediate_size (%d) to be multiples of 32", c->hidden, c->intermediate);
  /* ORT 1.30 takes fc1 scales with one block per row (hidden_size 32) for per-row quantization
   * and then wants one fc2 scale per row too, which intermediate_size > 32 does not have */
  if (c->hidden == 32 && c->intermediate != 32)
    return err_set(e, EXIT_USAGE, "--target ort: ONNX Runtime's QMoE cannot hold hidden_size 32 "
                   "with intermediate_size %d (one block scale per mlp1 row is read as per-row "
                   "quantization, which mlp2's %d blocks per row contradict); use the standard "
                   "target", c->intermediate, c->intermediate / 32);
  return 0;
}

void export_ort_code_table(uint8_t q8[256][2]) {
  for (int b = 0; b < 256; b++) {
    /* 2 x fp4 is an integer in -12..12 (-0 gives 0): exact in the cast */
    q8[b][0] = (uint8_t)(128 + (int)(2.0f * mx4_fp4_table[b & 15]));
    q8[b][1] = (uint8_t)(128 + (int)(2.0f * mx4_fp4_table[b >> 4]));
  }
}

int export_ort_write_q8(const ckpt *ck, const exl_tensor *t, uint64_t b0, uint64_t b1, int fd,
                        const char *path, void *buf, size_t buf_bytes, export_progress_fn fn,
                        void *ctx, err *e) {
  const int codes = t->src == EXL_MX4_Q8;
  const uint64_t n_rows = (uint64_t)t->dims[0] * (uint64_t)t->dims[1];
  const uint64_t expert_bytes = t->n_bytes / (uint64_t)t->dims[0];
  const int64_t C = codes ? t->dims[2] : t->dims[2] * 32;        /* values in a row */
  const uint64_t row_bytes = t->n_bytes / n_rows;                /* C codes or C/32 floats */
  if (b0 % expert_bytes || b1 % expert_bytes || row_bytes > buf_bytes)
    return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': range [%llu, %llu) is not whole experts",
                   path, t->name, (unsigned long long)b0, (unsigned long long)b1);
  /* no scale byte that overflows fp32 (the same rule as the standard target's): checked where
   * the scales are written; the same rank writes the codes of the same experts, and every
   * nibble is a valid code */
  if (!codes && ckpt_check_rows(ck, t->scales, (int64_t)(b0 / expert_bytes),
                                (int64_t)((b1 - b0) / expert_bytes), e) != 0)
    return -1;
  const uint8_t *blocks = ckpt_tensor_data(t->t), *scales = ckpt_tensor_data(t->scales);
  uint8_t q8[256][2];
  export_ort_code_table(q8);
  const uint64_t per = buf_bytes / row_bytes;
  uint64_t done = 0;
  for (uint64_t r = b0 / row_bytes; r < b1 / row_bytes;) {
    const uint64_t n = b1 / row_bytes - r < per ? b1 / row_bytes - r : per;
    if (codes) {
      uint8_t *out = buf;
      const uint8_t *src = blocks + r * (uint64_t)(C / 2);
      for (uint64_t j = 0; j < n * (uint64_t)(C / 2); j++) {
        out[2 * j] = q8[src[j]][0];
        out[2 * j + 1] = q8[src[j]][1];
      }
    } else {
      float *out = buf;
      const uint8_t *src = scales + r * (uint64_t)(C / 32);
      /* 2^(s-127) / 2: halving is exact down to 2^-128 (a subnormal; no flush-to-zero build) */
      for (uint64_t j = 0; j < n * (uint64_t)(C / 32); j++) out[j] = mx4_scale(src[j]) * 0.5f;
    }
    if (fs_pwrite_all(fd, buf, (size_t)(n * row_bytes), t->offset + r * row_bytes, path, e) != 0)
      return -1;
    r += n;
    done += n * row_bytes;
    if (fn) fn(ctx, done);
  }
  return 0;
}
