/* Data checks of owned tensors before use (ckpt.h: ckpt_check_rows). */
#include <stdio.h>
#include <string.h>

#include "guard.h"
#include "ckpt.h"

/* A bf16 value with all exponent bits set is an infinity or a NaN. */
static int bf16_nonfinite(uint16_t h) { return (h & 0x7f80u) == 0x7f80u; }

static int ckpt_check_rows_unguarded(const ckpt *c, const ckpt_tensor *t, int64_t row0, int64_t n_rows, err *e) {
  int64_t cols = 1;
  for (int i = 1; i < t->n_dims; i++) cols *= t->shape[i];
  const int64_t rows = t->n_dims > 0 ? t->shape[0] : 1;
  if (row0 < 0 || n_rows < 0 || row0 + n_rows > rows)
    return err_set(e, EXIT_RUNTIME, "%s: rows [%lld, %lld) outside [0, %lld)", t->name,
                   (long long)row0, (long long)(row0 + n_rows), (long long)rows);
  /* walk the parts (q/k/v in the Hugging Face layout) that hold the wanted rows */
  int64_t part_row0 = 0;
  for (int p = 0; p < t->n_parts; p++) {
    const st_tensor *pt = t->part[p];
    const int64_t prow = pt->n_dims > 0 ? pt->shape[0] : 1;
    int64_t a = row0 > part_row0 ? row0 : part_row0;
    int64_t b = row0 + n_rows < part_row0 + prow ? row0 + n_rows : part_row0 + prow;
    const char *file = st_file_path(ckpt_file(c, (size_t)t->file_index[p]));
    for (int64_t r = a; r < b; r++) {
      const int64_t base = (r - part_row0) * cols;
      if (t->dtype == ST_BF16) {
        /* memcpy loads: a data section may start at an odd offset */
        const uint8_t *v = (const uint8_t *)pt->data + 2 * base;
        for (int64_t k = 0; k < cols; k++) {
          uint16_t h;
          memcpy(&h, v + 2 * k, sizeof h);
          if (bf16_nonfinite(h))
            return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': element %lld of row %lld is %s "
                           "(bf16 0x%04x): corrupt data", file, pt->name, (long long)k,
                           (long long)(r - part_row0), (h & 0x7f) ? "NaN" : "infinite", h);
        }
      } else if (t->role == CK_MLP1_SCALES || t->role == CK_MLP2_SCALES) {
        /* 6 x 2^(s-127) overflows fp32 from s = 253 on; no real checkpoint comes near it */
        const uint8_t *v = (const uint8_t *)pt->data + base;
        for (int64_t k = 0; k < cols; k++)
          if (v[k] >= 253)
            return err_set(e, EXIT_RUNTIME, "%s: tensor '%s': scale byte %u at row %lld, block "
                           "%lld overflows fp32 (2^%d): corrupt data", file, pt->name, v[k],
                           (long long)(r - part_row0), (long long)k, v[k] - 127);
      }
    }
    part_row0 += prow;
  }
  return 0;
}

typedef struct {
  const ckpt *c;
  const ckpt_tensor *t;
  int64_t row0, n_rows;
  err *e;
} ckpt_check_rows_args;

static int ckpt_check_rows_call(void *p) {
  ckpt_check_rows_args *a = p;
  return ckpt_check_rows_unguarded(a->c, a->t, a->row0, a->n_rows, a->e);
}

int ckpt_check_rows(const ckpt *c, const ckpt_tensor *t, int64_t row0, int64_t n_rows, err *e) {
  ckpt_check_rows_args a = {c, t, row0, n_rows, e};
  const char *bad = NULL;
  const int rc = guard_mapped_call(ckpt_check_rows_call, &a, &bad);
  return rc == -2 ? guard_bus_error(e, bad) : rc;
}
