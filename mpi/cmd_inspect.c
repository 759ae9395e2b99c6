/* gptoss-mpi inspect: describe a checkpoint (layout, files, config, tensors, spec section 3
 * figures). The figures are summed from the tensors actually found and must agree with the
 * ones the config implies (ckpt_summary_from_config). Output is built completely before it
 * is printed, so an error leaves stdout empty. Local: does not initialise MPI. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "cli.h"
#include "strbuf.h"
#include "log.h"

static const char inspect_usage[] =
    "usage: gptoss-mpi inspect CKPT [--json]\n"
    "\n"
    "Describe a checkpoint directory (original/ or Hugging Face layout): files, config, tensor\n"
    "count, bytes per layer and in total (bf16 and MXFP4), parameter count.\n"
    "\n"
    "  --json            one JSON object instead of text, including every tensor's name,\n"
    "                    original name, dtype, shape, file, offset and size\n";

enum { OPT_JSON = CLI_OPT_FIRST_COMMAND_OPT };

/* ---- figures from the tensors ---------------------------------------------------------------- */

typedef struct {
  uint64_t attn, moe, m1b, m1s, m2b, m2s;
} layer_fig;

static int role_is_attn(ckpt_role r) {
  return r == CK_ATTN_NORM || r == CK_QKV_W || r == CK_QKV_B || r == CK_SINKS || r == CK_OUT_W ||
         r == CK_OUT_B;
}

static int summary_from_ckpt(const ckpt *c, ckpt_summary *s, err *e) {
  const gpt_config *cfg = ckpt_config(c);
  const int L = cfg->n_layers;
  memset(s, 0, sizeof *s);
  layer_fig *lf = calloc((size_t)L, sizeof *lf);
  if (!lf) return err_set(e, EXIT_RUNTIME, "inspect: out of memory");
  for (size_t i = 0; i < ckpt_n_files(c); i++) s->n_tensors += st_file_n_tensors(ckpt_file(c, i));

  uint64_t bf16_values = 0, blocks_bytes = 0;
  for (size_t i = 0; i < ckpt_n_tensors(c); i++) {
    const ckpt_tensor *t = ckpt_tensor_at(c, i);
    uint64_t bytes = 0;
    for (int k = 0; k < t->n_parts; k++) bytes += t->part[k]->n_bytes;
    s->total_bytes += bytes;
    if (t->dtype == ST_BF16) bf16_values += bytes / 2;
    if (ckpt_role_is_global(t->role)) {
      if (t->dtype != ST_BF16) { free(lf); return err_set(e, EXIT_RUNTIME, "%s: global tensor is not BF16", t->name); }
      s->global_bf16_values += bytes / 2;
      continue;
    }
    if (t->layer < 0 || t->layer >= L) {
      free(lf);
      return err_set(e, EXIT_RUNTIME, "%s: layer %d outside [0, %d)", t->name, t->layer, L);
    }
    layer_fig *f = &lf[t->layer];
    switch (t->role) {
      case CK_MLP1_BLOCKS: f->m1b += bytes; blocks_bytes += bytes; break;
      case CK_MLP1_SCALES: f->m1s += bytes; break;
      case CK_MLP2_BLOCKS: f->m2b += bytes; blocks_bytes += bytes; break;
      case CK_MLP2_SCALES: f->m2s += bytes; break;
      default:
        if (role_is_attn(t->role)) f->attn += bytes / 2;
        else f->moe += bytes / 2;
    }
  }
  for (int l = 1; l < L; l++)
    if (memcmp(&lf[l], &lf[0], sizeof lf[0]) != 0) {
      free(lf);
      return err_set(e, EXIT_RUNTIME, "layer %d holds different tensor sizes from layer 0", l);
    }
  s->layer_attn_values = lf[0].attn;
  s->layer_moe_bf16_values = lf[0].moe;
  s->layer_bf16_bytes = 2 * (lf[0].attn + lf[0].moe);
  s->mlp1_blocks_bytes = lf[0].m1b;
  s->mlp1_scales_bytes = lf[0].m1s;
  s->mlp2_blocks_bytes = lf[0].m2b;
  s->mlp2_scales_bytes = lf[0].m2s;
  s->layer_mxfp4_bytes = lf[0].m1b + lf[0].m1s + lf[0].m2b + lf[0].m2s;
  s->layer_mxfp4_weights = 2 * (lf[0].m1b + lf[0].m2b);
  s->layer_total_bytes = s->layer_bf16_bytes + s->layer_mxfp4_bytes;
  s->layer_experts_bf16_bytes = 2 * s->layer_mxfp4_weights;
  s->global_bf16_bytes = 2 * s->global_bf16_values;
  s->all_bf16_bytes = 2 * bf16_values;
  s->all_mxfp4_bytes = s->total_bytes - s->all_bf16_bytes;
  s->n_params = bf16_values + 2 * blocks_bytes;
  free(lf);
  return 0;
}

#define SUMMARY_FIELDS(X)                                                                      \
  X(n_tensors) X(layer_bf16_bytes) X(layer_attn_values) X(layer_moe_bf16_values)               \
  X(layer_mxfp4_bytes) X(layer_mxfp4_weights) X(mlp1_blocks_bytes) X(mlp1_scales_bytes)        \
  X(mlp2_blocks_bytes) X(mlp2_scales_bytes) X(layer_total_bytes) X(global_bf16_values)         \
  X(global_bf16_bytes) X(all_bf16_bytes) X(all_mxfp4_bytes) X(total_bytes) X(n_params)         \
  X(layer_experts_bf16_bytes)

/* The tensors must hold exactly what the config says (a mismatch is a reader bug or a
 * checkpoint the catalog should have refused). */
static int summary_check(const ckpt *c, const ckpt_summary *got, err *e) {
  ckpt_summary want;
  ckpt_summary_from_config(ckpt_config(c), &want);
  if (ckpt_get_layout(c) == LAYOUT_HF) want.n_tensors += 4 * (uint64_t)ckpt_config(c)->n_layers;
#define CHECK_FIELD(f)                                                                         \
  if (got->f != want.f)                                                                        \
    return err_set(e, EXIT_RUNTIME, "%s: " #f " is %llu from the tensors but %llu from the config", \
                   ckpt_dir(c), (unsigned long long)got->f, (unsigned long long)want.f);
  SUMMARY_FIELDS(CHECK_FIELD)
#undef CHECK_FIELD
  return 0;
}

/* ---- text output ----------------------------------------------------------------------------- */


/* 26924576 -> "26,924,576" (the spelling of spec section 3). */
static const char *thousands(uint64_t v, char buf[32]) {
  char digits[24];
  int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v), k = 0;
  for (int i = 0; i < n; i++) {
    if (i > 0 && (n - i) % 3 == 0) buf[k++] = ',';
    buf[k++] = digits[i];
  }
  buf[k] = '\0';
  return buf;
}

/* As config.json spells it: integral values as integers (with ".0" where the published file
 * has a float), others with the shortest spelling that reads back as v. */
static void fmt_double(char *out, size_t len, double v, int point) {
  if (v == floor(v) && fabs(v) < 9007199254740992.0) {
    snprintf(out, len, point ? "%.0f.0" : "%.0f", v);
    return;
  }
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(out, len, "%.*g", prec, v);
    if (strtod(out, NULL) == v) return;
  }
}

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

static void config_values(const gpt_config *c, double v[CONFIG_N_KEYS]) {
  const double vals[CONFIG_N_KEYS] = {
      c->n_layers,       c->n_experts,  c->top_k,      c->vocab,          c->hidden,
      c->intermediate,   c->swiglu_limit, c->head_dim, c->n_heads,        c->n_kv_heads,
      c->sliding_window, c->initial_context_length,    c->rope_theta,     c->rope_scaling_factor,
      c->rope_ntk_alpha, c->rope_ntk_beta};
  memcpy(v, vals, sizeof vals);
}

static void text_build(const ckpt *c, const ckpt_summary *s, strbuf *b) {
  char t1[32], t2[32];
  const gpt_config *cfg = ckpt_config(c);
  strbuf_printf(b, "directory  %s\n", ckpt_dir(c));
  strbuf_printf(b, "layout     %s\n", ckpt_get_layout(c) == LAYOUT_HF ? "hf (Hugging Face)" : "original");
  strbuf_printf(b, "files      %zu\n", ckpt_n_files(c));
  for (size_t i = 0; i < ckpt_n_files(c); i++) {
    const st_file *f = ckpt_file(c, i);
    strbuf_printf(b, "  %-40s %20s B  %5zu tensors\n", base_name(st_file_path(f)),
              thousands(st_file_size(f), t1), st_file_n_tensors(f));
  }
  strbuf_printf(b, "config     %s\n", ckpt_config_path(c));
  double v[CONFIG_N_KEYS];
  config_values(cfg, v);
  for (int k = 0; k < CONFIG_N_KEYS; k++) {
    char num[40];
    fmt_double(num, sizeof num, v[k], k == 6 || k == 13); /* swiglu_limit, rope_scaling_factor */
    strbuf_printf(b, "  %-24s %s\n", config_key_names[k], num);
  }
  strbuf_printf(b, "tensors    %llu\n", (unsigned long long)s->n_tensors);
  strbuf_printf(b, "per layer (x %d)\n", cfg->n_layers);
  strbuf_printf(b, "  bf16                        %s values = %s B\n",
            thousands(s->layer_bf16_bytes / 2, t1), thousands(s->layer_bf16_bytes, t2));
  strbuf_printf(b, "    attention (norm, qkv, sinks, out)   %s values\n", thousands(s->layer_attn_values, t1));
  strbuf_printf(b, "    MoE bf16 (norm, gate, biases)       %s values\n", thousands(s->layer_moe_bf16_values, t1));
  strbuf_printf(b, "  MXFP4                       %s B (%s weights)\n", thousands(s->layer_mxfp4_bytes, t1),
            thousands(s->layer_mxfp4_weights, t2));
  strbuf_printf(b, "    mlp1 blocks / scales      %s / %s B\n", thousands(s->mlp1_blocks_bytes, t1),
            thousands(s->mlp1_scales_bytes, t2));
  strbuf_printf(b, "    mlp2 blocks / scales      %s / %s B\n", thousands(s->mlp2_blocks_bytes, t1),
            thousands(s->mlp2_scales_bytes, t2));
  strbuf_printf(b, "  one layer total             %s B\n", thousands(s->layer_total_bytes, t1));
  strbuf_printf(b, "global bf16 (embedding, unembedding, norm)  %s values = %s B\n",
            thousands(s->global_bf16_values, t1), thousands(s->global_bf16_bytes, t2));
  strbuf_printf(b, "all bf16                      %s B\n", thousands(s->all_bf16_bytes, t1));
  strbuf_printf(b, "all MXFP4                     %s B\n", thousands(s->all_mxfp4_bytes, t1));
  strbuf_printf(b, "total                         %s B = %.2f GiB\n", thousands(s->total_bytes, t1),
            (double)s->total_bytes / (1024.0 * 1024.0 * 1024.0));
  strbuf_printf(b, "parameters                    %s\n", thousands(s->n_params, t1));
  strbuf_printf(b, "one layer's experts dequantized to bf16  %s B\n",
            thousands(s->layer_experts_bf16_bytes, t1));
}

/* ---- JSON output ----------------------------------------------------------------------------- */

static cJSON *json_build(const ckpt *c, const ckpt_summary *s) {
  cJSON *root = cJSON_CreateObject(), *a, *o;
  if (!root) return NULL;
  const gpt_config *cfg = ckpt_config(c);
  cJSON_AddStringToObject(root, "layout", ckpt_get_layout(c) == LAYOUT_HF ? "hf" : "original");
  cJSON_AddStringToObject(root, "directory", ckpt_dir(c));
  cJSON_AddStringToObject(root, "config_file", ckpt_config_path(c));
  cJSON_AddStringToObject(root, "defaulted_keys", ckpt_defaulted_keys(c));
  a = cJSON_AddArrayToObject(root, "files");
  for (size_t i = 0; a && i < ckpt_n_files(c); i++) {
    const st_file *f = ckpt_file(c, i);
    o = cJSON_CreateObject();
    if (!o) continue;
    cJSON_AddStringToObject(o, "name", base_name(st_file_path(f)));
    cJSON_AddStringToObject(o, "path", st_file_path(f));
    cJSON_AddNumberToObject(o, "bytes", (double)st_file_size(f));
    cJSON_AddNumberToObject(o, "data_start", (double)st_file_data_start(f));
    cJSON_AddNumberToObject(o, "tensors", (double)st_file_n_tensors(f));
    cJSON_AddItemToArray(a, o);
  }
  o = cJSON_AddObjectToObject(root, "config");
  double v[CONFIG_N_KEYS];
  config_values(cfg, v);
  for (int k = 0; o && k < CONFIG_N_KEYS; k++) cJSON_AddNumberToObject(o, config_key_names[k], v[k]);
  o = cJSON_AddObjectToObject(root, "summary");
  if (o) {
#define ADD_FIELD(f) cJSON_AddNumberToObject(o, #f, (double)s->f);
    SUMMARY_FIELDS(ADD_FIELD)
#undef ADD_FIELD
    cJSON_AddNumberToObject(o, "layer_bf16_values", (double)(s->layer_bf16_bytes / 2));
    cJSON_AddNumberToObject(o, "total_gib", (double)s->total_bytes / (1024.0 * 1024.0 * 1024.0));
  }
  a = cJSON_AddArrayToObject(root, "tensors");
  for (size_t i = 0; a && i < ckpt_n_tensors(c); i++) {
    const ckpt_tensor *t = ckpt_tensor_at(c, i);
    for (int k = 0; k < t->n_parts; k++) {
      const st_tensor *p = t->part[k];
      o = cJSON_CreateObject();
      if (!o) continue;
      cJSON_AddStringToObject(o, "name", p->name);
      cJSON_AddStringToObject(o, "original_name", t->name);
      cJSON_AddStringToObject(o, "dtype", st_dtype_name(p->dtype));
      cJSON *sh = cJSON_AddArrayToObject(o, "shape");
      for (int d = 0; sh && d < p->n_dims; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)p->shape[d]));
      cJSON_AddStringToObject(o, "file", base_name(st_file_path(ckpt_file(c, (size_t)t->file_index[k]))));
      cJSON_AddNumberToObject(o, "offset", (double)p->file_offset);
      cJSON_AddNumberToObject(o, "bytes", (double)p->n_bytes);
      cJSON_AddItemToArray(a, o);
    }
  }
  return root;
}

/* ---- command --------------------------------------------------------------------------------- */

int cmd_inspect(int argc, char **argv) {
  static const struct option longopts[] = {CLI_COMMON_LONGOPTS, {"json", no_argument, 0, OPT_JSON}, {0, 0, 0, 0}};
  cli_common cc;
  cli_common_init(&cc);
  int opt, done = 0, rc = 0, json = 0;
  optind = 1;
  opterr = 1;
  while ((opt = getopt_long(argc, argv, CLI_COMMON_SHORTOPTS, longopts, NULL)) != -1) {
    if (cli_common_opt(opt, optarg, inspect_usage, &cc, &done, &rc)) {
      if (done) return rc;
      continue;
    }
    if (opt == OPT_JSON) json = 1;
    else return cli_bad_option("inspect");
  }
  if (optind >= argc) return cli_usage_error("inspect", "missing CKPT");
  if (optind + 1 < argc) return cli_usage_error("inspect", "unexpected argument '%s'", argv[optind + 1]);

  /* read */
  err e = {0};
  ckpt *c = NULL;
  if (ckpt_open(argv[optind], &c, &e) != 0) {
    log_error("%s", e.msg);
    return EXIT_RUNTIME;
  }
  const char *defaulted = ckpt_defaulted_keys(c);
  if (defaulted && *defaulted)
    log_warn("%s: missing key(s) %s: official defaults used", ckpt_config_path(c), defaulted);

  /* sum and check */
  ckpt_summary s;
  if (summary_from_ckpt(c, &s, &e) != 0 || summary_check(c, &s, &e) != 0) {
    log_error("%s", e.msg);
    ckpt_close(c);
    return EXIT_RUNTIME;
  }

  /* report: the whole output is built first so that an error prints nothing on stdout */
  char *out = NULL;
  if (json) {
    cJSON *root = json_build(c, &s);
    out = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
  } else {
    strbuf b = {0};
    text_build(c, &s, &b);
    if (b.oom) free(b.p);
    else out = b.p;
  }
  ckpt_close(c);
  if (!out) {
    log_error("inspect: out of memory while building the output");
    return EXIT_RUNTIME;
  }
  fputs(out, stdout);
  if (json) fputc('\n', stdout);
  free(out);
  if (fflush(stdout) != 0) {
    log_error("inspect: cannot write to standard output");
    return EXIT_RUNTIME;
  }
  return 0;
}
