/* A decoder session driven like a client (ort_decoder.h). */
#include "ort_decoder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int in;                 /* session input index (past_key_values.*) */
  char out[128];          /* its present.* output */
  ort_value_in feed;      /* the cache fed to the next call */
  void *owned;            /* the data of feed (a previous present), freed here */
} cache_slot;

struct ort_decoder {
  ort_session *s;
  int batch, past, has_pos;
  cache_slot *slots;
  int n_slots;
};

static int find_io(const ort_io_info *io, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (!strcmp(io[i].name, name)) return i;
  return -1;
}

int ort_decoder_open(ort_session *s, int batch, ort_decoder **out, err *e) {
  *out = NULL;
  const char *model = ort_session_path(s);
  const ort_io_info *in, *outs;
  int n_in, n_outs, has_ids = 0, has_mask = 0;
  ort_session_io(s, &in, &n_in, &outs, &n_outs);
  if (batch < 1) return err_set(e, EXIT_USAGE, "%s: batch %d", model, batch);
  ort_decoder *d = calloc(1, sizeof *d);
  if (d) d->slots = calloc((size_t)(n_in ? n_in : 1), sizeof *d->slots);
  if (!d || !d->slots) {
    free(d);
    return err_set(e, EXIT_RUNTIME, "out of memory");
  }
  d->s = s;
  d->batch = batch;
  static const char past[] = "past_key_values";
  int rc = 0;
  for (int i = 0; rc == 0 && i < n_in; i++) {
    const ort_io_info *v = &in[i];
    const int int2 = v->elem_type == ORT_T_INT64 && v->n_dims == 2;
    if (!strcmp(v->name, "input_ids") && int2) {
      has_ids = 1;
    } else if (!strcmp(v->name, "attention_mask") && int2) {
      has_mask = 1;
    } else if (!strcmp(v->name, "position_ids") && int2) {
      d->has_pos = 1;
    } else if (!strncmp(v->name, past, sizeof past - 1) && v->elem_type == ORT_T_FLOAT &&
               v->n_dims == 4) {
      cache_slot *cs = &d->slots[d->n_slots++];
      cs->in = i;
      snprintf(cs->out, sizeof cs->out, "present%s", v->name + sizeof past - 1);
      if (find_io(outs, n_outs, cs->out) < 0)
        rc = err_set(e, EXIT_RUNTIME, "%s: input '%s' has no output '%s' to feed it from",
                     model, v->name, cs->out);
      cs->feed.name = v->name;
      cs->feed.elem_type = ORT_T_FLOAT;
      cs->feed.n_dims = 4;
      for (int k = 0; k < 4; k++)
        cs->feed.shape[k] = v->shape[k] >= 0 ? v->shape[k]
                            : !strcmp(v->dim_names[k], "batch_size") ? batch : 0;
    } else {
      rc = err_set(e, EXIT_RUNTIME, "%s: input '%s' (type %d, rank %d) is not one a decoder "
                   "client feeds (input_ids, attention_mask, position_ids int64 [batch, n]; "
                   "past_key_values.* float [batch, heads, past, head_dim])", model, v->name,
                   v->elem_type, v->n_dims);
    }
  }
  if (rc == 0 && (!has_ids || !has_mask || d->n_slots == 0))
    rc = err_set(e, EXIT_RUNTIME, "%s: not a decoder with a KV cache (it needs the inputs "
                 "input_ids, attention_mask and past_key_values.*): export it again with this "
                 "version of gptoss-mpi", model);
  if (rc != 0) {
    ort_decoder_close(d);
    return -1;
  }
  *out = d;
  return 0;
}

void ort_decoder_close(ort_decoder *d) {
  if (!d) return;
  for (int i = 0; i < d->n_slots; i++) free(d->slots[i].owned);
  free(d->slots);
  free(d);
}

int ort_decoder_past(const ort_decoder *d) { return d->past; }

/* The layer a present.* output belongs to (the first number in its name), -1 if none. */
static int name_layer(const char *name) {
  for (const char *p = name; *p; p++)
    if (*p >= '0' && *p <= '9') return atoi(p);
  return -1;
}

/* 1 (with why) unless v is [batch, ., total, .] with in's fixed dimensions. */
static int cache_bad(const ort_value_out *v, const ort_io_info *in, int batch, int total,
                     char *why, size_t wl) {
  int bad = v->elem_type != ORT_T_FLOAT || v->n_dims != 4 || v->shape[0] != batch ||
            v->shape[2] != total;
  for (int k = 0; !bad && k < 4; k++)
    if (in->shape[k] >= 0 && v->shape[k] != in->shape[k]) bad = 1;
  if (!bad) return 0;
  char sh[96] = "";
  for (int k = 0; k < v->n_dims && k < ORT_MAX_DIMS; k++) {
    size_t n = strlen(sh);
    snprintf(sh + n, sizeof sh - n, "%s%lld", k ? ", " : "", (long long)v->shape[k]);
  }
  snprintf(why, wl, "%s [%s] holds %lld positions after %d were processed", v->name, sh,
           (long long)(v->n_dims > 2 ? v->shape[2] : -1), total);
  return 1;
}

int ort_decoder_run(ort_decoder *d, const int64_t *ids, int S, const int64_t *mask,
                    const int64_t *pos, const char *const *names, int n_out, ort_value_out *outs,
                    int *bad_layer, char *why, size_t why_len, err *e) {
  const int B = d->batch, T = d->past + S, n_all = n_out + d->n_slots;
  if (S < 1) return err_set(e, EXIT_USAGE, "%s: a call of %d positions", ort_session_path(d->s), S);
  const char **all = malloc((size_t)n_all * sizeof *all);
  ort_value_out *vals = calloc((size_t)n_all, sizeof *vals);
  ort_value_in *feeds = calloc((size_t)d->n_slots + 3, sizeof *feeds);
  int64_t *ones = mask ? NULL : malloc((size_t)B * T * sizeof *ones);
  int64_t *p = pos ? NULL : malloc((size_t)B * S * sizeof *p);
  int rc = all && vals && feeds && (mask || ones) && (pos || p) ? 0 : err_set(e, EXIT_RUNTIME, "out of memory");
  if (rc == 0) {
    for (size_t i = 0; ones && i < (size_t)B * T; i++) ones[i] = 1;
    for (int b = 0; p && b < B; b++)
      for (int t = 0; t < S; t++) p[(size_t)b * S + t] = d->past + t;
    for (int i = 0; i < n_out; i++) all[i] = names[i];
    for (int i = 0; i < d->n_slots; i++) all[n_out + i] = d->slots[i].out;
    int n = 0;
    feeds[n++] = (ort_value_in){"input_ids", ORT_T_INT64, 2, {B, S}, ids};
    feeds[n++] = (ort_value_in){"attention_mask", ORT_T_INT64, 2, {B, T}, mask ? mask : ones};
    if (d->has_pos) feeds[n++] = (ort_value_in){"position_ids", ORT_T_INT64, 2, {B, S}, pos ? pos : p};
    for (int i = 0; i < d->n_slots; i++) feeds[n++] = d->slots[i].feed;
    rc = ort_run(d->s, n, feeds, all, n_all, vals, e);
  }
  if (rc == 0) {
    const ort_io_info *in;
    ort_session_io(d->s, &in, NULL, NULL, NULL);
    for (int i = 0; i < d->n_slots && rc == 0; i++)
      if (cache_bad(&vals[n_out + i], &in[d->slots[i].in], B, T, why, why_len)) {
        *bad_layer = name_layer(d->slots[i].out);
        rc = 1;
      }
    memcpy(outs, vals, (size_t)n_out * sizeof *outs);
    for (int i = 0; i < d->n_slots && rc == 0; i++) {
      cache_slot *cs = &d->slots[i];
      free(cs->owned);
      cs->owned = vals[n_out + i].data;
      cs->feed.data = cs->owned;
      vals[n_out + i].data = NULL;
      memcpy(cs->feed.shape, vals[n_out + i].shape, sizeof cs->feed.shape);
    }
    if (rc == 0) d->past = T;
    ort_outputs_free(vals + n_out, d->n_slots);
  }
  free(all);
  free(vals);
  free(feeds);
  free(ones);
  free(p);
  return rc;
}
