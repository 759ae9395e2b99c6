/* ort_logits_keep: an exported decoder's optional `num_logits_to_keep` input (docs/export.md
 * "The graph"), through ONNX Runtime's C API (parity/ort.h): an input that has an initializer
 * of the same name is an overridable initializer, which ORT leaves out of the session's input
 * list and onnxruntime-node (so transformers.js) cannot feed, but the C API can.
 *
 *   ort_logits_keep check MODEL.onnx T
 *       prefill of T ids (a batch of 2 different rows) with an empty cache: not fed, 0, T + 5
 *       and -1 give every position's logits, all equal; k = 1 and k = 3 give [2, k, V] equal
 *       to the last k rows of the full logits, bit for bit; present.* is the same whatever k;
 *       the input is not in the session's input list. Exit 0 pass, 1 fail.
 *   ort_logits_keep time MODEL.onnx IDS_FILE T K THREADS
 *       a benchmark (bench/bench_ort.sh): session creation, the session's first call, then the
 *       measured prefill of the first T ids with num_logits_to_keep = K (process CPU time next
 *       to wall time); prints one line of "key value" pairs, the argmax of the last logits and
 *       VmHWM / RssAnon / RssFile.
 *   ort_logits_keep readbw BYTES THREADS REPEAT
 *       a plain read of BYTES of memory (filled first) by THREADS threads, REPEAT times: the
 *       bandwidth bound of a GEMV over a weight of that size (the unembedding). */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "ort.h"

#define KEEP_NAME "num_logits_to_keep"

static int n_fail;
#define CHECK(c, ...)                          \
  do {                                         \
    if (!(c)) {                                \
      printf("FAIL ");                         \
      printf(__VA_ARGS__);                     \
      printf("\n");                            \
      n_fail++;                                \
    }                                          \
  } while (0)

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_utime.tv_sec + 1e-6 * (double)u.ru_utime.tv_usec +
         (double)u.ru_stime.tv_sec + 1e-6 * (double)u.ru_stime.tv_usec;
}

/* One prefill of ids [B, T] (mask all 1, positions 0..T-1, empty cache); keep < -1000 = not fed.
 * Fetches logits and present.0.key into out[0..1]. */
static int prefill(ort_session *s, const int64_t *ids, int B, int T, int64_t keep,
                   ort_value_out out[2], err *e) {
  const ort_io_info *in;
  int n_in;
  ort_session_io(s, &in, &n_in, NULL, NULL);
  ort_value_in *f = calloc((size_t)n_in + 1, sizeof *f);
  int64_t *mask = malloc((size_t)B * T * 8), *pos = malloc((size_t)B * T * 8);
  if (!f || !mask || !pos) {
    free(f);
    free(mask);
    free(pos);
    return err_set(e, EXIT_RUNTIME, "out of memory");
  }
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      mask[b * T + t] = 1;
      pos[b * T + t] = t;
    }
  int n = 0;
  for (int i = 0; i < n_in; i++) {
    ort_value_in *v = &f[n++];
    v->name = in[i].name;
    v->elem_type = in[i].elem_type;
    v->n_dims = in[i].n_dims;
    if (!strcmp(in[i].name, "input_ids") || !strcmp(in[i].name, "position_ids")) {
      v->shape[0] = B;
      v->shape[1] = T;
      v->data = in[i].name[0] == 'i' ? (const void *)ids : (const void *)pos;
    } else if (!strcmp(in[i].name, "attention_mask")) {
      v->shape[0] = B;
      v->shape[1] = T;
      v->data = mask;
    } else { /* past_key_values.*: [batch, KV, 0, Dh] */
      for (int k = 0; k < in[i].n_dims; k++)
        v->shape[k] = in[i].shape[k] >= 0 ? in[i].shape[k]
                      : !strcmp(in[i].dim_names[k], "batch_size") ? B : 0;
    }
  }
  if (keep > -1000) f[n++] = (ort_value_in){KEEP_NAME, ORT_T_INT64, 0, {0}, &keep};
  const char *names[2] = {"logits", "present.0.key"};
  int rc = ort_run(s, n, f, names, 2, out, e);
  free(f);
  free(mask);
  free(pos);
  return rc;
}

static int check(ort_runtime *rt, const char *model, int T) {
  err e = {0};
  ort_session *s = NULL;
  ort_session_opts o = ort_session_opts_default();
  o.intra_threads = 2;
  if (ort_session_open(rt, model, &o, &s, &e) != 0) {
    printf("FAIL %s\n", e.msg);
    return 1;
  }
  const ort_io_info *in;
  int n_in;
  ort_session_io(s, &in, &n_in, NULL, NULL);
  for (int i = 0; i < n_in; i++)
    CHECK(strcmp(in[i].name, KEEP_NAME) != 0, "%s is in the session's input list (input %d): "
          "not an overridable initializer", KEEP_NAME, i);
  const int B = 2;
  int64_t *ids = malloc((size_t)B * T * 8);
  for (int t = 0; t < B * T; t++) ids[t] = (7 * t + 3) % 61;
  ort_value_out full[2] = {0}, got[2] = {0};
  if (prefill(s, ids, B, T, -2000, full, &e) != 0) {
    printf("FAIL not fed: %s\n", e.msg);
    n_fail++;
  }
  const int64_t V = full[0].n_dims == 3 ? full[0].shape[2] : 0;
  CHECK(full[0].n_dims == 3 && full[0].shape[0] == B && full[0].shape[1] == T,
        "not fed: logits not [%d, %d, V]", B, T);
  const int64_t ks[] = {0, T + 5, -1, 1, 3};
  for (size_t j = 0; V && j < sizeof ks / sizeof ks[0]; j++) {
    const int64_t k = ks[j], want = k >= 1 && k <= T ? k : T;
    if (prefill(s, ids, B, T, k, got, &e) != 0) {
      printf("FAIL %s = %lld: %s\n", KEEP_NAME, (long long)k, e.msg);
      n_fail++;
      err_clear(&e);
      continue;
    }
    const int shape_ok = got[0].n_dims == 3 && got[0].shape[0] == B && got[0].shape[1] == want &&
                         got[0].shape[2] == V;
    CHECK(shape_ok, "%s = %lld: logits [%lld, %lld, %lld], want [%d, %lld, %lld]", KEEP_NAME,
          (long long)k, (long long)got[0].shape[0], (long long)got[0].shape[1],
          (long long)got[0].shape[2], B, (long long)want, (long long)V);
    int differ = 0;
    double worst = 0;
    for (int b = 0; shape_ok && b < B; b++)
      for (int64_t r = 0; r < want; r++) {
        const float *a = (const float *)got[0].data + ((size_t)b * want + r) * V;
        const float *z = (const float *)full[0].data + ((size_t)b * T + T - want + r) * V;
        differ += memcmp(a, z, (size_t)V * 4) != 0;
        for (int64_t v = 0; v < V; v++) worst = fmax(worst, fabs((double)a[v] - z[v]));
      }
    CHECK(differ == 0, "%s = %lld: %d of %lld rows differ from the last rows of all positions' "
          "logits (max |diff| %.3g)", KEEP_NAME, (long long)k, differ, (long long)(B * want), worst);
    CHECK(got[1].n_bytes == full[1].n_bytes && !memcmp(got[1].data, full[1].data, got[1].n_bytes),
          "%s = %lld: present.0.key differs", KEEP_NAME, (long long)k);
    printf("  %s = %lld: logits [%d, %lld, %lld], %s\n", KEEP_NAME, (long long)k, B,
           (long long)got[0].shape[1], (long long)V,
           differ ? "DIFFERENT" : want == T ? "= all positions' logits" : "= their last rows, bit for bit");
    ort_outputs_free(got, 2);
  }
  ort_outputs_free(full, 2);
  free(ids);
  ort_session_close(s);
  return n_fail ? 1 : 0;
}

/* VmHWM / RssAnon / RssFile of this process, MiB */
static void mem_line(char *buf, size_t n) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long hwm = -1, anon = -1, file = -1;
  while (f && fgets(line, sizeof line, f)) {
    sscanf(line, "VmHWM: %ld", &hwm);
    sscanf(line, "RssAnon: %ld", &anon);
    sscanf(line, "RssFile: %ld", &file);
  }
  if (f) fclose(f);
  snprintf(buf, n, "VmHWM_MiB %ld RssAnon_MiB %ld RssFile_MiB %ld", hwm / 1024, anon / 1024, file / 1024);
}

typedef struct {
  const uint64_t *p;
  size_t n;
  uint64_t sum;
} read_part;

static void *read_run(void *arg) {
  read_part *r = arg;
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 4 <= r->n; i += 4) {
    a ^= r->p[i];
    b ^= r->p[i + 1];
    c ^= r->p[i + 2];
    d ^= r->p[i + 3];
  }
  for (; i < r->n; i++) a ^= r->p[i];
  r->sum = a ^ b ^ c ^ d;
  return NULL;
}

static int readbw(double bytes, int threads, int repeat) {
  const size_t n = (size_t)(bytes / 8);
  uint64_t *p = malloc(n * 8);
  if (!p || threads < 1 || threads > 16 || repeat < 1) {
    free(p);
    fprintf(stderr, "readbw: cannot allocate %.0f bytes or bad arguments\n", bytes);
    return 1;
  }
  for (size_t i = 0; i < n; i++) p[i] = i * 0x9E3779B97F4A7C15ull;
  double best = 1e30, times[64];
  uint64_t sink = 0;
  for (int r = 0; r < repeat && r < 64; r++) {
    pthread_t th[16];
    read_part parts[16];
    const double t0 = now();
    for (int t = 0; t < threads; t++) {
      const size_t a = n * (size_t)t / (size_t)threads, b = n * (size_t)(t + 1) / (size_t)threads;
      parts[t] = (read_part){p + a, b - a, 0};
      pthread_create(&th[t], NULL, read_run, &parts[t]);
    }
    for (int t = 0; t < threads; t++) {
      pthread_join(th[t], NULL);
      sink ^= parts[t].sum;
    }
    times[r] = now() - t0;
    best = times[r] < best ? times[r] : best;
  }
  const int m = repeat < 64 ? repeat : 64;
  for (int i = 1; i < m; i++) /* sort for the median */
    for (int j = i; j > 0 && times[j] < times[j - 1]; j--) {
      const double t = times[j];
      times[j] = times[j - 1];
      times[j - 1] = t;
    }
  printf("read_bytes %.0f threads %d median_s %.3f min_s %.3f median_GB_s %.2f best_GB_s %.2f (xor %llx)\n",
         (double)n * 8, threads, times[m / 2], best, (double)n * 8 / times[m / 2] / 1e9,
         (double)n * 8 / best / 1e9, (unsigned long long)(sink & 0xff));
  free(p);
  return 0;
}

static int time_it(ort_runtime *rt, const char *model, const char *ids_file, int T, int64_t K,
                   int threads) {
  FILE *fp = fopen(ids_file, "r");
  int64_t *ids = calloc((size_t)T, 8);
  int n = 0;
  long long v;
  while (fp && ids && n < T && fscanf(fp, "%lld%*[, \n]", &v) == 1) ids[n++] = v;
  if (fp) fclose(fp);
  if (n < T) {
    fprintf(stderr, "%s: %d ids, want %d\n", ids_file, n, T);
    free(ids);
    return 1;
  }
  err e = {0};
  ort_session *s = NULL;
  ort_session_opts o = ort_session_opts_default();
  o.intra_threads = threads;
  double t0 = now();
  if (ort_session_open(rt, model, &o, &s, &e) != 0) {
    fprintf(stderr, "%s\n", e.msg);
    free(ids);
    return 1;
  }
  const double create = now() - t0;
  ort_value_out out[2] = {0};
  double w[2], c[2];
  int rc = 0;
  for (int r = 0; rc == 0 && r < 2; r++) {
    if (r) ort_outputs_free(out, 2);
    const double c0 = cpu();
    t0 = now();
    rc = prefill(s, ids, 1, T, K, out, &e);
    w[r] = now() - t0;
    c[r] = cpu() - c0;
  }
  if (rc != 0) {
    fprintf(stderr, "%s\n", e.msg);
  } else {
    const int64_t rows = out[0].shape[1], V = out[0].shape[2];
    const float *last = (const float *)out[0].data + (size_t)(rows - 1) * V;
    int64_t best = 0;
    for (int64_t i = 1; i < V; i++)
      if (last[i] > last[best]) best = i;
    char mem[160];
    mem_line(mem, sizeof mem);
    printf("create_s %.2f first_prefill%d_s %.2f (cpu %.1f) prefill%d_s %.2f (cpu %.1f) "
           "keep %lld logits_rows %lld %s next_id %lld\n",
           create, T, w[0], c[0], T, w[1], c[1], (long long)K, (long long)rows, mem, (long long)best);
  }
  ort_outputs_free(out, 2);
  ort_session_close(s);
  free(ids);
  return rc ? 1 : 0;
}

int main(int argc, char **argv) {
  const int is_check = argc == 4 && !strcmp(argv[1], "check");
  const int is_time = argc == 7 && !strcmp(argv[1], "time");
  if (argc == 5 && !strcmp(argv[1], "readbw")) return readbw(atof(argv[2]), atoi(argv[3]), atoi(argv[4]));
  if (!is_check && !is_time) {
    fprintf(stderr, "usage: ort_logits_keep check MODEL.onnx T\n"
                    "       ort_logits_keep time MODEL.onnx IDS_FILE T K THREADS\n"
                    "       ort_logits_keep readbw BYTES THREADS REPEAT\n");
    return 2;
  }
  err e = {0};
  ort_runtime *rt = NULL;
  if (ort_open(NULL, &rt, &e) != 0) {
    fprintf(stderr, "%s\n", e.msg);
    return 1;
  }
  const int rc = is_check ? check(rt, argv[2], atoi(argv[3]))
                          : time_it(rt, argv[2], argv[3], atoi(argv[4]), atoll(argv[5]), atoi(argv[6]));
  if (is_check) printf(rc ? "FAIL\n" : "PASS\n");
  ort_close(rt);
  return rc;
}
