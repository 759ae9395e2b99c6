/* The corrupt-input matrix: hand-made broken checkpoints, each derived from case-a, each
 * rejected by ckpt_open with code 1 and a message naming the file and the tensor or key.
 *   test_corrupt              run every case in a temporary directory (removed afterwards)
 *   test_corrupt --emit DIR   also keep every case as DIR/<case> (for tests/corrupt_cli.sh)
 * Each case prints "name -> message" (this list goes into the release note). */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "stwrite.h"
#include "testutil.h"

static uint8_t *g_file;        /* case-a model.safetensors */
static size_t g_file_len;
static uint64_t g_hdr_len;     /* its header length N */
static char *g_config;         /* case-a config.json */

static const uint8_t *data_ptr(void) { return g_file + 8 + g_hdr_len; }
static size_t data_len(void) { return g_file_len - 8 - (size_t)g_hdr_len; }

static char *join(const char *a, const char *b) {
  char *p = malloc(strlen(a) + strlen(b) + 2);
  sprintf(p, "%s/%s", a, b);
  return p;
}

static cJSON *hdr(void) {
  return cJSON_ParseWithLength((const char *)g_file + 8, (size_t)g_hdr_len);
}

/* Write a safetensors file: header = printed JSON padded to a multiple of 8 + case-a data. */
static int write_st(const char *path, cJSON *h) {
  char *txt = cJSON_PrintUnformatted(h);
  size_t n = strlen(txt), padded = (n + 7) / 8 * 8;
  char *buf = malloc(padded + 1);
  memcpy(buf, txt, n);
  memset(buf + n, ' ', padded - n);
  int rc = tw_write_raw(path, padded, buf, padded, data_ptr(), data_len());
  free(buf);
  free(txt);
  return rc;
}

#define NO_CONFIG ((const char *)1)

/* A checkpoint dir: model.safetensors from header h (consumed; NULL = case-a bytes as they are)
 * and config.json with `config` (NULL = case-a's, NO_CONFIG = none). */
static int make_dir(const char *dir, cJSON *h, const char *config) {
  if (mkdir(dir, 0755) != 0) return -1;
  char *p = join(dir, "model.safetensors");
  int rc = h ? write_st(p, h) : tu_write_file(p, g_file, g_file_len);
  free(p);
  cJSON_Delete(h);
  if (config != NO_CONFIG) {
    const char *txt = config ? config : g_config;
    p = join(dir, "config.json");
    rc |= tu_write_file(p, txt, strlen(txt));
    free(p);
  }
  return rc;
}

static cJSON *entry(cJSON *h, const char *name) { return cJSON_GetObjectItemCaseSensitive(h, name); }

static void set_json(cJSON *h, const char *name, const char *field, const char *json) {
  cJSON_ReplaceItemInObjectCaseSensitive(entry(h, name), field, cJSON_Parse(json));
}

static uint64_t offset_of(cJSON *h, const char *name, int which) {
  cJSON *o = cJSON_GetObjectItemCaseSensitive(entry(h, name), "data_offsets");
  return (uint64_t)cJSON_GetArrayItem(o, which)->valuedouble;
}

static void set_offsets(cJSON *h, const char *name, uint64_t b, uint64_t e) {
  char buf[64];
  snprintf(buf, sizeof buf, "[%llu, %llu]", (unsigned long long)b, (unsigned long long)e);
  set_json(h, name, "data_offsets", buf);
}

/* case-a config.json with `from` replaced by `to`. */
static char *cfg_replace(const char *from, const char *to) {
  const char *p = strstr(g_config, from);
  if (!p) return NULL;
  size_t n = strlen(g_config) - strlen(from) + strlen(to) + 1;
  char *o = malloc(n);
  snprintf(o, n, "%.*s%s%s", (int)(p - g_config), g_config, to, p + strlen(from));
  return o;
}

static int cfg_case(const char *dir, const char *from, const char *to) {
  char *c = cfg_replace(from, to);
  int rc = c ? make_dir(dir, NULL, c) : -1;
  free(c);
  return rc;
}

/* Raw model.safetensors bytes (length prefix claimed, then body). */
static int raw_case(const char *dir, uint64_t claimed, const void *body, size_t n) {
  if (mkdir(dir, 0755) != 0) return -1;
  char *p = join(dir, "model.safetensors");
  int rc = tw_write_raw(p, claimed, body, n, NULL, 0);
  free(p);
  p = join(dir, "config.json");
  rc |= tu_write_file(p, g_config, strlen(g_config));
  free(p);
  return rc;
}

static int padded_header_case(const char *dir, const char *json) {
  size_t n = strlen(json), padded = (n + 7) / 8 * 8;
  char *buf = malloc(padded);
  memcpy(buf, json, n);
  memset(buf + n, ' ', padded - n);
  int rc = raw_case(dir, padded, buf, padded);
  free(buf);
  return rc;
}

/* ---- the cases ---- */

static int c_truncated_data(const char *d) {
  if (make_dir(d, NULL, NULL)) return -1;
  char *p = join(d, "model.safetensors");
  int rc = truncate(p, (off_t)g_file_len - 100);
  free(p);
  return rc;
}
static int c_truncated_header(const char *d) { return raw_case(d, g_hdr_len, g_file + 8, (size_t)g_hdr_len / 2); }
static int c_header_len_past_eof(const char *d) {
  return raw_case(d, g_file_len, g_file + 8, g_file_len - 8);
}
static int c_header_len_huge(const char *d) {
  return raw_case(d, (uint64_t)1 << 63, g_file + 8, g_file_len - 8);
}
static int c_empty_file(const char *d) {
  if (make_dir(d, NULL, NULL)) return -1;
  char *p = join(d, "model.safetensors");
  int rc = tu_write_file(p, "", 0);
  free(p);
  return rc;
}
static int c_seven_bytes(const char *d) {
  if (make_dir(d, NULL, NULL)) return -1;
  char *p = join(d, "model.safetensors");
  int rc = tu_write_file(p, g_file, 7);
  free(p);
  return rc;
}
static int c_bad_json(const char *d) {
  return padded_header_case(d, "{\"embedding.weight\": {\"dtype\": \"BF16\", \"shape\": [512, 64");
}
static int c_json_not_object(const char *d) { return padded_header_case(d, "[1, 2, 3]"); }
static int c_trailing_garbage(const char *d) { return padded_header_case(d, "{} garbage"); }
static int c_unknown_dtype(const char *d) {
  cJSON *h = hdr();
  set_json(h, "block.0.attn.sinks", "dtype", "\"BF17\"");
  return make_dir(d, h, NULL);
}
static int c_shape_negative(const char *d) {
  cJSON *h = hdr();
  set_json(h, "block.1.attn.sinks", "shape", "[-8]");
  return make_dir(d, h, NULL);
}
static int c_shape_fractional(const char *d) {
  cJSON *h = hdr();
  set_json(h, "block.1.attn.sinks", "shape", "[8.5]");
  return make_dir(d, h, NULL);
}
static int c_shape_string(const char *d) {
  cJSON *h = hdr();
  set_json(h, "block.1.attn.sinks", "shape", "[\"8\"]");
  return make_dir(d, h, NULL);
}
static int c_shape_too_large(const char *d) {
  cJSON *h = hdr();
  set_json(h, "block.1.attn.sinks", "shape", "[1e16]");
  return make_dir(d, h, NULL);
}
static int c_too_many_dims(const char *d) {
  cJSON *h = hdr();
  set_json(h, "block.1.attn.sinks", "shape", "[8,1,1,1,1,1,1,1,1]");
  return make_dir(d, h, NULL);
}
static int c_range_shape_mismatch(const char *d) {
  cJSON *h = hdr();
  set_json(h, "block.2.mlp.gate.bias", "shape", "[15]");
  return make_dir(d, h, NULL);
}
static int c_overlap(const char *d) {
  cJSON *h = hdr();
  uint64_t b = offset_of(h, "block.0.attn.norm.scale", 0);
  set_offsets(h, "block.0.attn.sinks", b + 2, b + 18);
  return make_dir(d, h, NULL);
}
static int c_range_past_end(const char *d) {
  cJSON *h = hdr();
  set_offsets(h, "block.3.mlp.mlp2_bias", data_len() - 10, data_len() - 10 + 16 * 64 * 2);
  return make_dir(d, h, NULL);
}
static int c_begin_after_end(const char *d) {
  cJSON *h = hdr();
  uint64_t b = offset_of(h, "norm.scale", 0), e = offset_of(h, "norm.scale", 1);
  set_offsets(h, "norm.scale", e, b);
  return make_dir(d, h, NULL);
}
static int c_duplicate_name(const char *d) {
  cJSON *h = hdr();
  cJSON_AddItemToObject(h, "norm.scale", cJSON_Duplicate(entry(h, "norm.scale"), 1));
  return make_dir(d, h, NULL);
}
static int c_metadata_not_strings(const char *d) {
  cJSON *h = hdr();
  cJSON *m = cJSON_CreateObject();
  cJSON_AddNumberToObject(m, "format", 1);
  if (entry(h, "__metadata__")) cJSON_ReplaceItemInObjectCaseSensitive(h, "__metadata__", m);
  else cJSON_AddItemToObject(h, "__metadata__", m);
  return make_dir(d, h, NULL);
}
static int c_missing_tensor(const char *d) {
  cJSON *h = hdr();
  cJSON_DeleteItemFromObjectCaseSensitive(h, "block.3.mlp.gate.bias");
  return make_dir(d, h, NULL);
}
static int c_shape_contradicts_config(const char *d) {
  cJSON *h = hdr();
  set_json(h, "block.0.attn.sinks", "shape", "[4, 2]");
  return make_dir(d, h, NULL);
}
static int c_wrong_dtype(const char *d) {
  cJSON *h = hdr();
  set_json(h, "block.0.attn.sinks", "dtype", "\"F32\"");
  set_json(h, "block.0.attn.sinks", "shape", "[4]");
  return make_dir(d, h, NULL);
}
static int c_unknown_tensor(const char *d) {
  cJSON *h = hdr();
  cJSON_AddItemToObject(h, "block.0.attn.extra",
                        cJSON_Parse("{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}"));
  return make_dir(d, h, NULL);
}
static int c_layer_beyond_config(const char *d) {
  cJSON *h = hdr();
  cJSON_AddItemToObject(h, "block.4.attn.sinks",
                        cJSON_Parse("{\"dtype\":\"BF16\",\"shape\":[0],\"data_offsets\":[0,0]}"));
  return make_dir(d, h, NULL);
}
static int c_mixed_layout(const char *d) {
  cJSON *h = hdr();
  cJSON_AddItemToObject(h, "model.layers.0.mlp.router.bias",
                        cJSON_Parse("{\"dtype\":\"BF16\",\"shape\":[0],\"data_offsets\":[0,0]}"));
  return make_dir(d, h, NULL);
}
static int c_same_tensor_two_files(const char *d) {
  if (make_dir(d, NULL, NULL)) return -1;
  cJSON *h = hdr();
  uint64_t b = offset_of(h, "norm.scale", 0);
  cJSON_Delete(h);
  tw_tensor t = {"norm.scale", "BF16", 1, {64}, data_ptr() + b, 128};
  char *p = join(d, "extra.safetensors");
  int rc = tw_write(p, &t, 1, NULL, 0);
  free(p);
  return rc;
}
static int c_config_missing(const char *d) { return make_dir(d, NULL, NO_CONFIG); }
static int c_config_bad_json(const char *d) { return make_dir(d, NULL, "{\"num_hidden_layers\": 4,"); }
static int c_config_key_missing(const char *d) { return cfg_case(d, "\"hidden_size\": 64,", ""); }
static int c_config_key_wrong_type(const char *d) {
  return cfg_case(d, "\"hidden_size\": 64", "\"hidden_size\": \"64\"");
}
static int c_config_unknown_key(const char *d) {
  return cfg_case(d, "\"hidden_size\": 64,", "\"hidden_size\": 64, \"rms_norm_eps\": 1e-5,");
}
static int c_config_hf_spelling(const char *d) {
  return cfg_case(d, "\"num_experts\"", "\"num_local_experts\"");
}
static int c_hidden_not_mult_32(const char *d) {
  return cfg_case(d, "\"hidden_size\": 64", "\"hidden_size\": 48");
}
static int c_heads_not_divisible(const char *d) {
  return cfg_case(d, "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3");
}
static int c_topk_gt_experts(const char *d) {
  return cfg_case(d, "\"experts_per_token\": 4", "\"experts_per_token\": 17");
}
static int c_empty_dir(const char *d) { return mkdir(d, 0755); }
static int c_dir_named_safetensors(const char *d) {
  if (make_dir(d, NULL, NULL)) return -1;
  char *p = join(d, "x.safetensors");
  int rc = mkdir(p, 0755);
  free(p);
  return rc;
}
static int c_dangling_symlink(const char *d) {
  if (make_dir(d, NULL, NULL)) return -1;
  char *p = join(d, "y.safetensors");
  int rc = symlink("does-not-exist.bin", p);
  free(p);
  return rc;
}
static int c_path_is_file(const char *d) { return tu_write_file(d, g_config, strlen(g_config)); }
static int c_nonexistent(const char *d) { return symlink("no-such-checkpoint-dir", d); }

typedef struct {
  const char *name;
  int (*make)(const char *dir);
  const char *frag[3];   /* all must appear in the message (NULL = unused) */
} corrupt_case;

#define ST "model.safetensors"
static const corrupt_case cases[] = {
    {"truncated_data", c_truncated_data, {ST, "tensor '", "runs past the end of the data section"}},
    {"truncated_header", c_truncated_header, {ST, "header length", "runs past the end of the file"}},
    {"header_len_past_eof", c_header_len_past_eof, {ST, "header length", "runs past the end of the file"}},
    {"header_len_huge", c_header_len_huge, {ST, "9223372036854775808", "runs past the end of the file"}},
    {"empty_file", c_empty_file, {ST, "0 bytes", "too short"}},
    {"seven_bytes", c_seven_bytes, {ST, "7 bytes", "too short"}},
    {"bad_json", c_bad_json, {ST, "not valid JSON", NULL}},
    {"json_not_object", c_json_not_object, {ST, "is an array, expected a JSON object", NULL}},
    {"trailing_garbage", c_trailing_garbage, {ST, "non-space bytes after the JSON", NULL}},
    {"unknown_dtype", c_unknown_dtype, {ST, "'block.0.attn.sinks'", "unknown dtype 'BF17'"}},
    {"shape_negative", c_shape_negative, {ST, "'block.1.attn.sinks'", "shape entry 0 is -8"}},
    {"shape_fractional", c_shape_fractional, {ST, "'block.1.attn.sinks'", "shape entry 0 is 8.5"}},
    {"shape_string", c_shape_string, {ST, "'block.1.attn.sinks'", "shape entry 0 is \"8\""}},
    {"shape_beyond_2^53", c_shape_too_large, {ST, "'block.1.attn.sinks'", "shape entry 0"}},
    {"too_many_dims", c_too_many_dims, {ST, "'block.1.attn.sinks'", "9 dimensions"}},
    {"range_shape_mismatch", c_range_shape_mismatch, {ST, "'block.2.mlp.gate.bias'", "holds 32 bytes"}},
    {"overlapping_ranges", c_overlap, {ST, "block.0.attn.sinks", "overlaps tensor 'block.0.attn.norm.scale'"}},
    {"range_past_end", c_range_past_end, {ST, "'block.3.mlp.mlp2_bias'", "runs past the end of the data section"}},
    {"begin_after_end", c_begin_after_end, {ST, "'norm.scale'", "begins after it ends"}},
    {"duplicate_name", c_duplicate_name, {ST, "'norm.scale'", "appears twice"}},
    {"metadata_not_strings", c_metadata_not_strings, {ST, "__metadata__ entry 'format'", "expected a string"}},
    {"missing_tensor", c_missing_tensor, {"missing_tensor: ", "missing tensor 'block.3.mlp.gate.bias' (expected BF16 [16])", NULL}},
    {"shape_contradicts_config", c_shape_contradicts_config,
     {ST, "'block.0.attn.sinks': shape [4, 2] contradicts config.json", "expected [8] from num_attention_heads=8"}},
    {"wrong_dtype", c_wrong_dtype, {ST, "'block.0.attn.sinks'", "dtype F32, expected BF16"}},
    {"unknown_tensor", c_unknown_tensor, {ST, "unknown tensor 'block.0.attn.extra'", NULL}},
    {"layer_beyond_config", c_layer_beyond_config, {ST, "unknown tensor 'block.4.attn.sinks'", "num_hidden_layers=4"}},
    {"mixed_layout", c_mixed_layout, {ST, "mixed tensor layouts", "model.layers.0.mlp.router.bias"}},
    {"same_tensor_two_files", c_same_tensor_two_files, {"'norm.scale' appears in two files", "extra.safetensors", ST}},
    {"config_missing", c_config_missing, {"config.json", "missing", NULL}},
    {"config_bad_json", c_config_bad_json, {"config.json", "not valid JSON", NULL}},
    {"config_key_missing", c_config_key_missing, {"config.json", "missing key 'hidden_size'", NULL}},
    {"config_key_wrong_type", c_config_key_wrong_type, {"config.json", "'hidden_size' is a string", NULL}},
    {"config_unknown_key", c_config_unknown_key, {"config.json", "unknown key 'rms_norm_eps'", NULL}},
    {"config_hf_spelling", c_config_hf_spelling, {"config.json", "'num_local_experts' is Hugging Face spelling", NULL}},
    {"hidden_not_multiple_of_32", c_hidden_not_mult_32, {"config.json", "hidden_size = 48", "multiple of 32"}},
    {"heads_not_divisible", c_heads_not_divisible, {"config.json", "num_attention_heads = 8", "num_key_value_heads = 3"}},
    {"topk_gt_experts", c_topk_gt_experts, {"config.json", "experts_per_token = 17", "num_experts = 16"}},
    {"empty_dir", c_empty_dir, {"empty_dir", "no *.safetensors files", NULL}},
    {"dir_named_safetensors", c_dir_named_safetensors, {"x.safetensors", "not a regular file", NULL}},
    {"dangling_symlink", c_dangling_symlink, {"y.safetensors", "No such file", NULL}},
    {"path_is_file", c_path_is_file, {"path_is_file", "not a directory", NULL}},
    {"nonexistent_path", c_nonexistent, {"nonexistent_path", "No such file", NULL}},
};

int main(int argc, char **argv) {
  const char *emit = NULL;
  if (argc == 3 && strcmp(argv[1], "--emit") == 0) emit = argv[2];
  else if (argc != 1) {
    fprintf(stderr, "usage: %s [--emit DIR]\n", argv[0]);
    return 2;
  }
  char src[1024];
  snprintf(src, sizeof src, "%s/original/model.safetensors", tu_golden_dir());
  g_file = tu_read_file(src, &g_file_len);
  snprintf(src, sizeof src, "%s/original/config.json", tu_golden_dir());
  g_config = tu_read_file(src, NULL);
  if (!g_file || !g_config || g_file_len < 8) {
    fprintf(stderr, "cannot read case-a from %s\n", tu_golden_dir());
    return 1;
  }
  for (int i = 7; i >= 0; i--) g_hdr_len = (g_hdr_len << 8) | g_file[i];
  char *base = emit ? strdup(emit) : tu_mkdtemp("test_corrupt");
  if (emit) mkdir(emit, 0755);
  TU_CHECK(base != NULL, "temp dir");
  const size_t n = sizeof cases / sizeof *cases;
  printf("corrupt-input matrix (%zu cases):\n", n);
  for (size_t i = 0; base && i < n; i++) {
    char *dir = join(base, cases[i].name);
    int made = cases[i].make(dir);
    TU_CHECK(made == 0, "%s: could not build the case", cases[i].name);
    ckpt *c = (ckpt *)1;
    err e = {0};
    int rc = ckpt_open(dir, &c, &e);
    int ok = rc == -1 && c == NULL && e.code == 1 && !strchr(e.msg, '\n');
    for (int f = 0; f < 3 && cases[i].frag[f]; f++) ok &= strstr(e.msg, cases[i].frag[f]) != NULL;
    TU_CHECK(ok, "%s: rc %d code %d msg '%s' (want '%s' '%s' '%s')", cases[i].name, rc, e.code,
             e.msg, cases[i].frag[0], cases[i].frag[1] ? cases[i].frag[1] : "",
             cases[i].frag[2] ? cases[i].frag[2] : "");
    if (rc == 0) ckpt_close(c);
    /* The path prefix (temp dir) varies between runs; print it relative to the case. */
    const char *m = e.msg;
    const char *at = strstr(m, base);
    printf("  %-26s -> %s\n", cases[i].name,
           at == m ? m + strlen(base) + 1 : m);
    free(dir);
  }
  if (base && !emit) tu_rm_rf(base);
  free(base);
  free(g_file);
  free(g_config);
  return tu_finish("test_corrupt");
}
