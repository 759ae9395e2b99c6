/* test_export_shapes: the real gpt-oss-20b and gpt-oss-120b shapes export as decoders. Full-size
 * checkpoints whose data are holes (synth_opts.sparse, no disk used) go through the exporter's
 * layout, graph and client files; the data file is created at its full size with ftruncate (a
 * hole too: the byte writing itself is the same code for every shape and is checked at small
 * shapes). ONNX Runtime then loads the model (graph optimization off, so no weight is folded
 * into memory) and its I/O must be the decoder's: 24 / 36 layers of past_key_values.N.key/value
 * [batch_size, 8, past_sequence_length, 64], logits [batch_size, sequence_length, 201088],
 * present.N.* [batch_size, 8, total_sequence_length, 64]; the layout's data size is the
 * checkpoint's tensors plus the derived tables; model.onnx stays small (no weight inside).
 * Usage: test_export_shapes */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "export_client.h"
#include "export_graph.h"
#include "export_layout.h"
#include "export_write.h"
#include "ort.h"
#include "synth.h"
#include "testutil.h"

static void check_io(const ort_session *s, const gpt_config *c) {
  const ort_io_info *in, *out;
  int n_in, n_out;
  ort_session_io(s, &in, &n_in, &out, &n_out);
  TU_CHECK(n_in == 3 + 2 * c->n_layers && n_out == 1 + 2 * c->n_layers, "%d inputs, %d outputs",
           n_in, n_out);
  if (n_in != 3 + 2 * c->n_layers || n_out != 1 + 2 * c->n_layers) return;
  TU_CHECK(!strcmp(in[0].name, "input_ids") && !strcmp(in[1].name, "attention_mask") &&
           !strcmp(in[2].name, "position_ids"), "inputs %s %s %s", in[0].name, in[1].name, in[2].name);
  TU_CHECK(!strcmp(out[0].name, "logits") && out[0].shape[2] == c->vocab &&
           !strcmp(out[0].dim_names[0], "batch_size"), "logits [.., %lld]", (long long)out[0].shape[2]);
  int bad = 0;
  for (int l = 0; l < c->n_layers; l++)
    for (int k = 0; k < 2; k++) {
      const ort_io_info *p = &in[3 + 2 * l + k], *q = &out[1 + 2 * l + k];
      char want_p[64], want_q[64];
      snprintf(want_p, sizeof want_p, k ? EXPORT_PAST_VALUE : EXPORT_PAST_KEY, l);
      snprintf(want_q, sizeof want_q, k ? EXPORT_PRESENT_VALUE : EXPORT_PRESENT_KEY, l);
      bad += strcmp(p->name, want_p) || strcmp(q->name, want_q) || p->n_dims != 4 ||
             q->n_dims != 4 || p->shape[1] != c->n_kv_heads || p->shape[3] != c->head_dim ||
             q->shape[1] != c->n_kv_heads || q->shape[3] != c->head_dim ||
             strcmp(p->dim_names[0], "batch_size") || strcmp(p->dim_names[2], "past_sequence_length") ||
             strcmp(q->dim_names[2], "total_sequence_length");
    }
  TU_CHECK(bad == 0, "%d cache inputs/outputs not [batch_size, %d, past|total, %d]", bad,
           c->n_kv_heads, c->head_dim);
}

static void one(const char *preset_name, synth_preset preset, int want_layers, uint64_t min_bytes) {
  char *dir = tu_mkdtemp("export_shapes");
  char ck_dir[4200], out[4200], data[4300], model[4300];
  snprintf(ck_dir, sizeof ck_dir, "%s/ck", dir);
  snprintf(out, sizeof out, "%s/out", dir);
  synth_opts so;
  synth_opts_init(&so);
  so.preset = preset;
  so.sparse = 1;
  err e = {0};
  ckpt *ck = NULL;
  export_layout L;
  memset(&L, 0, sizeof L);
  int rc = synth_write(ck_dir, &so, &e);
  if (rc == 0) rc = ckpt_open(ck_dir, &ck, &e);
  TU_CHECK(rc == 0, "%s: %s", preset_name, e.msg);
  const gpt_config *c = rc == 0 ? ckpt_config(ck) : NULL;
  if (rc == 0) {
    TU_CHECK(c->n_layers == want_layers, "%s: %d layers", preset_name, c->n_layers);
    export_opts o = {.dense = EXPORT_DENSE_BF16, .n_layers = c->n_layers,
                     .max_positions = (int)(c->initial_context_length * c->rope_scaling_factor)};
    rc = export_layout_make(ck, &o, NULL, &L, &e);
    TU_CHECK(rc == 0, "%s: layout: %s", preset_name, e.msg);
  }
  if (rc == 0) {
    TU_CHECK(L.file_bytes[0] >= min_bytes, "%s: %llu bytes of data", preset_name,
             (unsigned long long)L.file_bytes[0]);
    char f[64];
    export_layout_file_name(&L, 0, f, sizeof f);
    snprintf(data, sizeof data, "%s/%s", out, f);
    rc = mkdir(out, 0755) != 0 ? err_errno(&e, errno, "%s", out) : export_dir_init(out, &e);
    int fd = rc == 0 ? open(data, O_WRONLY | O_CREAT | O_EXCL, 0644) : -1;
    if (rc == 0 && (fd < 0 || ftruncate(fd, (off_t)L.file_bytes[0]) != 0)) rc = err_errno(&e, errno, "%s", data);
    if (fd >= 0) close(fd);
    uint64_t graph_bytes = 0;
    size_t n_nodes = 0;
    if (rc == 0) rc = export_graph_write(&L, out, &graph_bytes, &n_nodes, &e);
    if (rc == 0) rc = export_client_files_write(&L, ck, out, NULL, NULL, &e);
    TU_CHECK(rc == 0, "%s: graph and client files: %s", preset_name, e.msg);
    TU_CHECK(graph_bytes < 4u << 20, "%s: model.onnx is %llu bytes", preset_name,
             (unsigned long long)graph_bytes);
    printf("  %s: %d layers, %zu top-level nodes, model.onnx %.0f KiB, data %.2f GB\n", preset_name,
           c->n_layers, n_nodes, graph_bytes / 1024.0, L.file_bytes[0] / 1e9);
  }
  if (rc == 0) {
    ort_runtime *rt = NULL;
    ort_session *s = NULL;
    ort_session_opts opt = ort_session_opts_default();
    opt.opt_level = 0;
    opt.intra_threads = 1;
    snprintf(model, sizeof model, "%s/%s", out, EXPORT_MODEL_FILE);
    rc = ort_open(NULL, &rt, &e);
    if (rc == 0) rc = ort_session_open(rt, model, &opt, &s, &e);
    TU_CHECK(rc == 0, "%s: ONNX Runtime: %s", preset_name, e.msg);
    if (rc == 0) check_io(s, c);
    ort_session_close(s);
    ort_close(rt);
  }
  if (L.t) export_layout_free(&L);
  ckpt_close(ck);
  tu_rm_rf(dir);
  free(dir);
}

int main(void) {
  one("gpt-oss-20b", SYNTH_20B, 24, 13500000000ull);
  one("gpt-oss-120b", SYNTH_120B, 36, 65000000000ull);
  return tu_finish("test_export_shapes");
}
