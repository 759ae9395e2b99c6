/* test_ort: parity/ort.c on the real ONNX Runtime (the library `make setup` installs).
 *
 * Builds tiny models with tests/ort_models.py (/usr/bin/python3 + Debian's onnx), runs them
 * through ort_run_ids and compares with values computed here (exact: every value is a multiple
 * of 1/32). Every OrtApi slot declared in ort.c is exercised with an observable effect:
 * names/types/symbolic dims (io slots), outputs (run, tensor and shape slots), the optimized
 * model dump at two levels (optimization level + file path slots), the thread count of the
 * process (intra-op threads slot), a session config entry and the arena switch (prepacking and
 * arena off: loads and computes the same), ORT error texts (status slots); the Release slots and
 * AllocatorFree are checked by the sanitizer build's leak checker.
 * Usage: test_ort MODELS_SCRIPT FAKE_OLD_LIB. A missing library is a failure ("run make setup"). */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ort.h"
#include "testutil.h"

enum { R = 13, D = 4, V = 11 }; /* tests/ort_models.py */

static float table_val(int r, int d) { return (float)((r * 7 + d * 3) % 17 - 8) / 8.0f; }
static float w_val(int d, int v) { return (float)((d * 5 + v * 11) % 13 - 6) / 4.0f; }

static char *models;   /* directory with the generated models */

static char *mpath(const char *name) {
  static char buf[4][4096];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", models, name);
  return buf[k];
}

static int n_threads(void) {
  DIR *d = opendir("/proc/self/task");
  int n = 0;
  if (!d) return -1;
  for (struct dirent *de; (de = readdir(d));)
    if (de->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

static int file_has(const char *path, const char *needle) {
  size_t n = 0;
  char *data = tu_read_file(path, &n);
  if (!data) return -1;
  int found = memmem(data, n, needle, strlen(needle)) != NULL;
  free(data);
  return found;
}

/* Expected logits [B*T, V], hidden [B*T, D] and next_id [B*T] for ids. */
static void expect(const int64_t *ids, int n, float *logits, float *hidden, int64_t *next) {
  for (int i = 0; i < n; i++) {
    int best = 0;
    for (int d = 0; d < D; d++) hidden[i * D + d] = table_val((int)ids[i], d);
    for (int v = 0; v < V; v++) {
      double s = 0;
      for (int d = 0; d < D; d++) s += (double)table_val((int)ids[i], d) * w_val(d, v);
      logits[i * V + v] = (float)s;
      if (logits[i * V + v] > logits[i * V + best]) best = v; /* first maximum, as ArgMax */
    }
    next[i] = best;
  }
}

static void check_io(const ort_io_info *io, const char *name, int type, int n_dims,
                     const int64_t *shape, const char *const *dim_names) {
  TU_CHECK(strcmp(io->name, name) == 0, "name '%s', expected '%s'", io->name, name);
  TU_CHECK(io->onnx_type == 1, "%s: onnx type %d, expected 1 (tensor)", name, io->onnx_type);
  TU_CHECK(io->elem_type == type, "%s: element type %d, expected %d", name, io->elem_type, type);
  TU_CHECK(io->n_dims == n_dims, "%s: rank %d, expected %d", name, io->n_dims, n_dims);
  for (int d = 0; d < n_dims && d < io->n_dims; d++) {
    TU_CHECK(io->shape[d] == shape[d], "%s: dim %d = %lld, expected %lld", name, d,
             (long long)io->shape[d], (long long)shape[d]);
    TU_CHECK(strcmp(io->dim_names[d], dim_names[d]) == 0, "%s: dim %d named '%s', expected '%s'",
             name, d, io->dim_names[d], dim_names[d]);
  }
}

static void test_io(ort_session *s) {
  const ort_io_info *in, *out;
  int n_in, n_out;
  ort_session_io(s, &in, &n_in, &out, &n_out);
  TU_CHECK(n_in == 1 && n_out == 3, "io counts %d, %d; expected 1, 3", n_in, n_out);
  if (n_in != 1 || n_out != 3) return;
  const char *bs[] = {"batch", "sequence", ""};
  check_io(&in[0], "input_ids", ORT_T_INT64, 2, (int64_t[]){-1, -1}, bs);
  check_io(&out[0], "logits", ORT_T_FLOAT, 3, (int64_t[]){-1, -1, V}, bs);
  check_io(&out[1], "next_id", ORT_T_INT64, 2, (int64_t[]){-1, -1}, bs);
  check_io(&out[2], "hidden", ORT_T_FLOAT, 3, (int64_t[]){-1, -1, D}, bs);
}

static void check_out(const ort_value_out *o, const char *name, int type, int n_dims,
                      const int64_t *shape, const void *want, size_t want_bytes) {
  TU_CHECK(strcmp(o->name, name) == 0, "output '%s', expected '%s'", o->name, name);
  TU_CHECK(o->elem_type == type, "%s: type %d, expected %d", name, o->elem_type, type);
  TU_CHECK(o->n_dims == n_dims, "%s: rank %d, expected %d", name, o->n_dims, n_dims);
  for (int d = 0; d < n_dims && d < o->n_dims; d++)
    TU_CHECK(o->shape[d] == shape[d], "%s: dim %d = %lld, expected %lld", name, d,
             (long long)o->shape[d], (long long)shape[d]);
  TU_CHECK(o->n_bytes == want_bytes, "%s: %zu bytes, expected %zu", name, o->n_bytes, want_bytes);
  if (o->n_bytes != want_bytes) return;
  if (type == ORT_T_FLOAT) {
    const float *a = o->data, *b = want;
    size_t bad = 0;
    for (size_t i = 0; i < want_bytes / 4; i++) bad += a[i] != b[i];
    TU_CHECK(bad == 0, "%s: %zu of %zu values differ (exact comparison)", name, bad, want_bytes / 4);
  } else {
    TU_CHECK(memcmp(o->data, want, want_bytes) == 0, "%s: values differ", name);
  }
}

/* Run ids [B, T] and compare all three outputs (all at once, or a named subset in another order). */
static void test_run(ort_session *s, const int64_t *ids, int B, int T) {
  int n = B * T;
  float *logits = calloc((size_t)n * V, 4), *hidden = calloc((size_t)n * D, 4);
  int64_t *next = calloc((size_t)n, 8);
  expect(ids, n, logits, hidden, next);
  ort_value_out outs[3];
  err e = {0};
  int rc = ort_run_ids(s, ids, B, T, NULL, 3, outs, &e);
  TU_CHECK(rc == 0, "run [%d, %d]: %s", B, T, e.msg);
  if (rc == 0) {
    check_out(&outs[0], "logits", ORT_T_FLOAT, 3, (int64_t[]){B, T, V}, logits, (size_t)n * V * 4);
    check_out(&outs[1], "next_id", ORT_T_INT64, 2, (int64_t[]){B, T}, next, (size_t)n * 8);
    check_out(&outs[2], "hidden", ORT_T_FLOAT, 3, (int64_t[]){B, T, D}, hidden, (size_t)n * D * 4);
    ort_outputs_free(outs, 3);
  }
  const char *names[] = {"next_id", "logits"};
  err_clear(&e);
  rc = ort_run_ids(s, ids, B, T, names, 2, outs, &e);
  TU_CHECK(rc == 0, "run [%d, %d] (2 named outputs): %s", B, T, e.msg);
  if (rc == 0) {
    check_out(&outs[0], "next_id", ORT_T_INT64, 2, (int64_t[]){B, T}, next, (size_t)n * 8);
    check_out(&outs[1], "logits", ORT_T_FLOAT, 3, (int64_t[]){B, T, V}, logits, (size_t)n * V * 4);
    ort_outputs_free(outs, 2);
  }
  free(logits);
  free(hidden);
  free(next);
}

/* err contains every needle. */
static void check_err(int rc, const err *e, const char *what, const char *n1, const char *n2) {
  TU_CHECK(rc == -1 && e->code != 0, "%s: expected an error, got rc %d", what, rc);
  TU_CHECK(!n1 || strstr(e->msg, n1), "%s: message lacks '%s': %s", what, n1, e->msg);
  TU_CHECK(!n2 || strstr(e->msg, n2), "%s: message lacks '%s': %s", what, n2, e->msg);
  printf("  %s -> %s\n", what, e->msg);
}

static void test_lib_errors(const char *fake) {
  static const char fix[] = "not found: install it with `make setup` or point --ort-lib/ORT_LIB at "
                            "libonnxruntime.so.1 of an ONNX Runtime release >= 1.22";
  ort_runtime *rt = NULL;
  err e = {0};
  check_err(ort_open("/nonexistent/dir/libonnxruntime.so.1", &rt, &e), &e, "missing library",
            "/nonexistent/dir/libonnxruntime.so.1", fix);
  TU_CHECK(rt == NULL, "no runtime on error");

  setenv("ORT_LIB", "/nonexistent/ort-lib-env.so", 1);
  err_clear(&e);
  check_err(ort_open(NULL, &rt, &e), &e, "ORT_LIB missing", "/nonexistent/ort-lib-env.so (ORT_LIB)",
            fix);
  unsetenv("ORT_LIB");

  err_clear(&e);
  check_err(ort_open("/lib/x86_64-linux-gnu/libm.so.6", &rt, &e), &e, "libm",
            "libm.so.6", "is not an ONNX Runtime library");
  err_clear(&e);
  check_err(ort_open(mpath("garbage.onnx"), &rt, &e), &e, "not a shared object",
            "cannot load ONNX Runtime library", "garbage.onnx");

  setenv("FAKE_ORT_VERSION", "1.16.3", 1);
  err_clear(&e);
  check_err(ort_open(fake, &rt, &e), &e, "ORT 1.16.3", "ONNX Runtime 1.16.3", "is too old");
  TU_CHECK(strstr(e.msg, "C API version 22"), "says which API version is needed: %s", e.msg);
  setenv("FAKE_ORT_VERSION", "1.30.0", 1); /* claims a new release, serves no API 22 */
  err_clear(&e);
  check_err(ort_open(fake, &rt, &e), &e, "no API 22", "ONNX Runtime 1.30.0",
            "does not provide C API version 22");
  unsetenv("FAKE_ORT_VERSION");
}

static void test_model_errors(ort_runtime *rt) {
  ort_session *s = NULL;
  err e = {0};
  check_err(ort_session_open(rt, mpath("garbage.onnx"), NULL, &s, &e), &e, "garbage model",
            mpath("garbage.onnx"), "ONNX Runtime cannot load the model");
  TU_CHECK(s == NULL, "no session on error");
  err_clear(&e);
  check_err(ort_session_open(rt, mpath("absent.onnx"), NULL, &s, &e), &e, "absent model",
            mpath("absent.onnx"), "No such file");
  err_clear(&e);
  ort_session_opts o = ort_session_opts_default();
  o.opt_level = 5;
  check_err(ort_session_open(rt, mpath("tiny.onnx"), &o, &s, &e), &e, "opt level 5",
            "optimization level", NULL);
  TU_CHECK(e.code == EXIT_USAGE, "bad option is a usage error (%d)", e.code);

  err_clear(&e);
  int rc = ort_session_open(rt, mpath("two_inputs.onnx"), NULL, &s, &e);
  TU_CHECK(rc == 0, "two_inputs.onnx loads: %s", e.msg);
  if (rc == 0) {
    int64_t ids[2] = {1, 2};
    ort_value_out outs[4];
    check_err(ort_run_ids(s, ids, 1, 2, NULL, 4, outs, &e), &e, "two inputs",
              mpath("two_inputs.onnx"), "expected exactly one graph input");
    ort_session_close(s);
  }

  err_clear(&e);
  rc = ort_session_open(rt, mpath("tiny.onnx"), NULL, &s, &e);
  TU_CHECK(rc == 0, "tiny.onnx: %s", e.msg);
  if (rc) return;
  int64_t ids[3] = {1, R, 2}; /* R is one past the table */
  ort_value_out outs[3];
  err_clear(&e);
  check_err(ort_run_ids(s, ids, 1, 3, NULL, 3, outs, &e), &e, "id out of range",
            mpath("tiny.onnx"), "run failed");
  ids[1] = 0;
  const char *bad[] = {"logits", "no_such_output"};
  err_clear(&e);
  check_err(ort_run_ids(s, ids, 1, 3, bad, 2, outs, &e), &e, "unknown output",
            mpath("tiny.onnx"), "no_such_output");
  err_clear(&e);
  check_err(ort_run_ids(s, ids, 1, 3, NULL, 2, outs, &e), &e, "all outputs, wrong count",
            "the model has 3", NULL);
  err_clear(&e);
  check_err(ort_run_ids(s, ids, 0, 3, NULL, 3, outs, &e), &e, "batch 0", "bad input shape", NULL);
  ort_session_close(s);
}

/* ort_run with several named inputs of two element types, an empty past (a dimension of 0, no
 * data), the output fed back as the next run's input (what a KV-cache driver does), and its
 * input errors. */
static void test_multi_input(ort_runtime *rt) {
  ort_session *s = NULL;
  err e = {0};
  int rc = ort_session_open(rt, mpath("cache.onnx"), NULL, &s, &e);
  TU_CHECK(rc == 0, "cache.onnx: %s", e.msg);
  if (rc) return;
  int64_t n1[2 * 2 * 3], n2[2 * 2 * 1 * 3];
  for (int i = 0; i < 12; i++) n1[i] = i - 5;
  for (int i = 0; i < 6; i++) n2[i] = 100 + i;
  ort_value_in in[2] = {{"past", ORT_T_FLOAT, 4, {1, 2, 0, 3}, NULL},
                        {"new", ORT_T_INT64, 4, {1, 2, 2, 3}, n1}};
  ort_value_out o1, o2;
  rc = ort_run(s, 2, in, NULL, 1, &o1, &e);
  TU_CHECK(rc == 0, "run with an empty past: %s", e.msg);
  if (rc == 0) {
    float want[12];
    for (int i = 0; i < 12; i++) want[i] = (float)n1[i];
    check_out(&o1, "present", ORT_T_FLOAT, 4, (int64_t[]){1, 2, 2, 3}, want, sizeof want);
    /* present back as past, inputs in the other order: [1, 2, 2 + 1, 3], per head past then new */
    ort_value_in in2[2] = {{"new", ORT_T_INT64, 4, {1, 2, 1, 3}, n2},
                           {"past", ORT_T_FLOAT, 4, {1, 2, 2, 3}, o1.data}};
    rc = ort_run(s, 2, in2, NULL, 1, &o2, &e);
    TU_CHECK(rc == 0, "run with the previous present as past: %s", e.msg);
    float want2[18];
    for (int h = 0; h < 2; h++)
      for (int j = 0; j < 9; j++)
        want2[h * 9 + j] = j < 6 ? (float)n1[h * 6 + j] : (float)n2[h * 3 + j - 6];
    if (rc == 0) check_out(&o2, "present", ORT_T_FLOAT, 4, (int64_t[]){1, 2, 3, 3}, want2, sizeof want2);
    if (rc == 0) ort_outputs_free(&o2, 1);
    ort_outputs_free(&o1, 1);
  }
  err_clear(&e);
  check_err(ort_run(s, 1, in + 1, NULL, 1, &o1, &e), &e, "missing input", mpath("cache.onnx"),
            "run failed");
  ort_value_in nodata = {"new", ORT_T_INT64, 4, {1, 2, 2, 3}, NULL};
  ort_value_in two[2] = {in[0], nodata};
  err_clear(&e);
  check_err(ort_run(s, 2, two, NULL, 1, &o1, &e), &e, "data missing", "'new' has 96 bytes but no data",
            NULL);
  ort_value_in neg = {"new", ORT_T_INT64, 4, {1, 2, -1, 3}, n1};
  two[1] = neg;
  err_clear(&e);
  check_err(ort_run(s, 2, two, NULL, 1, &o1, &e), &e, "negative dimension", "dimension 2 is -1", NULL);
  ort_session_close(s);
}

/* Optimization level and dump path: ConstantFolding (level >= 1) removes node 'fold_me'. */
static void test_options(ort_runtime *rt) {
  for (int level = 0; level <= 1; level++) {
    char dump[4096];
    snprintf(dump, sizeof dump, "%s/opt%d.onnx", models, level);
    ort_session_opts o = ort_session_opts_default();
    o.opt_level = level;
    o.optimized_model_path = dump;
    o.intra_threads = 1;
    ort_session *s = NULL;
    err e = {0};
    int rc = ort_session_open(rt, mpath("tiny.onnx"), &o, &s, &e);
    TU_CHECK(rc == 0, "level %d: %s", level, e.msg);
    if (rc) continue;
    int has = file_has(dump, "fold_me");
    TU_CHECK(has == (level == 0), "level %d: optimized model %s %s node fold_me (file_has %d)",
             level, dump, level == 0 ? "lacks" : "still has", has);
    int64_t ids[4] = {3, 4, 5, 6};
    test_run(s, ids, 2, 2);
    ort_session_close(s);
  }
  /* session config entry and arena slots: prepacking and the CPU arena off still load and
   * compute the same values (the memory they save is measured by tests/parity_stage_mem.py) */
  {
    ort_session_opts o = ort_session_opts_default();
    o.disable_prepacking = 1;
    o.disable_arena = 1;
    ort_session *s = NULL;
    err e = {0};
    int rc = ort_session_open(rt, mpath("tiny.onnx"), &o, &s, &e);
    TU_CHECK(rc == 0, "disable_prepacking: %s", e.msg);
    if (rc == 0) {
      int64_t ids[4] = {3, 4, 5, 6};
      test_run(s, ids, 2, 2);
    }
    ort_session_close(s);
  }
  /* ORT's intra-op pool of n threads starts n - 1 workers (the caller is the n-th). */
  for (int n = 1; n <= 3; n += 2) {
    ort_session_opts o = ort_session_opts_default();
    o.intra_threads = n;
    int before = n_threads();
    ort_session *s = NULL;
    err e = {0};
    int rc = ort_session_open(rt, mpath("tiny.onnx"), &o, &s, &e);
    TU_CHECK(rc == 0, "threads %d: %s", n, e.msg);
    if (rc) continue;
    int after = n_threads();
    printf("  intra_threads %d: process threads %d -> %d\n", n, before, after);
    TU_CHECK(after - before == n - 1, "intra_threads %d: %d new threads, expected %d", n,
             after - before, n - 1);
    ort_session_close(s);
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: test_ort MODELS_SCRIPT FAKE_OLD_LIB\n");
    return 2;
  }
  const char *lib = ort_default_lib();
  if (access(lib, R_OK) != 0) {
    fprintf(stderr, "FAIL: ONNX Runtime is not installed at %s: run `make setup` "
            "(installs onnxruntime-node@1.30.0 under .deps/ort)\n", lib);
    return 1;
  }
  models = tu_mkdtemp("ort");
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'", argv[1], models);
  if (system(cmd) != 0) {
    fprintf(stderr, "FAIL: %s did not write the test models (needs Debian's python3-onnx; "
            "run `make setup`)\n", cmd);
    return 1;
  }

  test_lib_errors(argv[2]);

  ort_runtime *rt = NULL;
  err e = {0};
  unsetenv("ORT_LIB");
  int rc = ort_open(NULL, &rt, &e);
  TU_CHECK(rc == 0, "default library %s: %s", lib, e.msg);
  if (rc) return tu_finish("test_ort");
  TU_CHECK(strcmp(ort_version(rt), "1.30.0") == 0, "version %s, expected 1.30.0", ort_version(rt));
  TU_CHECK(strcmp(ort_lib_path(rt), lib) == 0, "loaded from %s", ort_lib_path(rt));
  printf("  ONNX Runtime %s from %s\n", ort_version(rt), ort_lib_path(rt));

  /* A second runtime shares ORT's process-wide environment; closing it leaves the first usable. */
  ort_runtime *rt2 = NULL;
  rc = ort_open(lib, &rt2, &e);
  TU_CHECK(rc == 0, "second runtime: %s", e.msg);
  ort_close(rt2);

  const char *variants[] = {"tiny.onnx", "tiny_ext.onnx"};
  for (int k = 0; k < 2; k++) {
    ort_session *s = NULL;
    err_clear(&e);
    rc = ort_session_open(rt, mpath(variants[k]), NULL, &s, &e);
    TU_CHECK(rc == 0, "%s: %s", variants[k], e.msg);
    if (rc) continue;
    TU_CHECK(strcmp(ort_session_path(s), mpath(variants[k])) == 0, "session path");
    test_io(s);
    int64_t ids1[3] = {0, 12, 7};
    int64_t ids2[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    test_run(s, ids1, 1, 3);
    test_run(s, ids2, 2, 5); /* other shape on the same session (symbolic dims) */
    ort_session_close(s);
  }

  test_model_errors(rt);
  test_multi_input(rt);
  test_options(rt);
  ort_close(rt);

  tu_rm_rf(models);
  free(models);
  return tu_finish("test_ort");
}
