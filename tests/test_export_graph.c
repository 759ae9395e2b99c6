/* test_export_graph: the graph builder (export/onnx_graph.h) on its own.
 *   - a tiny model (Gemm with an external weight + inline bias, Loop with a body that reads an
 *     outer value) written to disk and run in ONNX Runtime (parity/ort.h) against C arithmetic
 *   - misuse is reported by the writer, not by a crash: duplicate node names, a missing input */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx_graph.h"
#include "ort.h"

static int n_fail;
#define EXPECT(c, ...) do { if (!(c)) { printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); n_fail++; } } while (0)

static int write_model(onnx_graph *g, const char *path, err *e) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return err_set(e, 1, "cannot create %s", path);
  uint64_t n = 0;
  int rc = onnx_model_write_fd(g, 11, 23, "test", "0", fd, path, &n, e);
  close(fd);
  return rc;
}

/* ids [1, 3] int64 -> Cast -> [1,3] float; y = Gemm(x, W[4,3], b[4], transB) -> [1,4];
 * then a Loop of 3 iterations adding y each time to an accumulator starting at 0: out = 3y. */
static void test_ort_roundtrip(const char *dir) {
  err e = {0};
  onnx_graph *g;
  EXPECT(onnx_graph_init("t", &g, &e) == 0, "%s", e.msg);
  const onnx_dim in_dims[2] = {{0, "batch"}, {0, "sequence"}};
  onnx_graph_add_input(g, "input_ids", ONNX_INT64, 2, in_dims);
  float w[12], b[4];
  for (int i = 0; i < 12; i++) w[i] = 0.25f * (float)(i - 5);
  for (int i = 0; i < 4; i++) b[i] = 0.5f * (float)i;
  char data[1024];
  snprintf(data, sizeof data, "%s/w.bin", dir);
  FILE *f = fopen(data, "wb");
  fwrite("pad!", 1, 4, f);            /* a non-zero offset */
  fwrite(w, sizeof w, 1, f);
  fclose(f);
  const int64_t wd[2] = {4, 3}, bd[1] = {4};
  onnx_graph_add_external(g, "W", ONNX_FLOAT, 2, wd, "w.bin", 4, sizeof w);
  onnx_graph_add_const(g, "b", ONNX_FLOAT, 1, bd, b, sizeof b);
  const char *in0[1] = {"input_ids"}, *x[1] = {"x"};
  onnx_node *n = onnx_graph_add_node(g, "Cast", "/cast", 1, in0, 1, x);
  onnx_node_attr_int(n, "to", ONNX_FLOAT);
  const char *gin[3] = {"x", "W", "b"}, *y[1] = {"y"};
  n = onnx_graph_add_node(g, "Gemm", "/gemm", 3, gin, 1, y);
  onnx_node_attr_int(n, "transB", 1);
  const int64_t three = 3;
  const uint8_t yes = 1;
  onnx_graph_add_const(g, "trip", ONNX_INT64, 0, NULL, &three, sizeof three);
  onnx_graph_add_const(g, "cond", ONNX_BOOL, 0, NULL, &yes, 1);
  const char *sh_in[1] = {"y"}, *sh[1] = {"ys"};
  onnx_graph_add_node(g, "Shape", "/shape", 1, sh_in, 1, sh);
  const float zero = 0;
  const int64_t one = 1;
  const char *z[1] = {"acc0"};
  n = onnx_graph_add_node(g, "ConstantOfShape", "/zeros", 1, sh, 1, z);
  onnx_node_attr_tensor(n, "value", ONNX_FLOAT, 1, &one, &zero, sizeof zero);
  onnx_graph *body = onnx_graph_sub(g, "body");
  onnx_graph_add_input(body, "it", ONNX_INT64, 0, NULL);
  onnx_graph_add_input(body, "c_in", ONNX_BOOL, 0, NULL);
  onnx_graph_add_input(body, "a_in", ONNX_FLOAT, -1, NULL);
  const char *ain[2] = {"a_in", "y"}, *aout[1] = {"a_out"}, *cin[1] = {"c_in"}, *cout[1] = {"c_out"};
  onnx_graph_add_node(body, "Add", "/body/add", 2, ain, 1, aout);
  onnx_graph_add_node(body, "Identity", "/body/cond", 1, cin, 1, cout);
  onnx_graph_add_output(body, "c_out", ONNX_BOOL, 0, NULL);
  onnx_graph_add_output(body, "a_out", ONNX_FLOAT, -1, NULL);
  const char *lin[3] = {"trip", "cond", "acc0"}, *lout[1] = {"out"};
  n = onnx_graph_add_node(g, "Loop", "/loop", 3, lin, 1, lout);
  onnx_node_attr_graph(n, "body", body);
  const onnx_dim od[2] = {{0, "batch"}, {4, NULL}};
  onnx_graph_add_output(g, "out", ONNX_FLOAT, 2, od);
  EXPECT(onnx_graph_n_nodes(g) == 5 && onnx_graph_n_initializers(g) == 4, "counts %zu %zu",
         onnx_graph_n_nodes(g), onnx_graph_n_initializers(g));
  char path[1024];
  snprintf(path, sizeof path, "%s/m.onnx", dir);
  EXPECT(write_model(g, path, &e) == 0, "%s", e.msg);
  onnx_graph_free(g);

  ort_runtime *rt = NULL;
  ort_session *s = NULL;
  if (ort_open(NULL, &rt, &e) != 0 || ort_session_open(rt, path, NULL, &s, &e) != 0) {
    EXPECT(0, "ORT: %s", e.msg);
    ort_close(rt);
    return;
  }
  const int64_t ids[3] = {1, 2, 7};
  ort_value_out o;
  memset(&o, 0, sizeof o);
  EXPECT(ort_run_ids(s, ids, 1, 3, NULL, 1, &o, &e) == 0, "%s", e.msg);
  const float *v = o.data;
  double worst = 0;
  for (int r = 0; v && r < 4; r++) {
    float ref = b[r];
    for (int c = 0; c < 3; c++) ref += (float)ids[c] * w[r * 3 + c];
    worst = fmax(worst, fabs(v[r] - 3.0f * ref));
  }
  EXPECT(v && worst < 1e-5, "loop model: max error %g", worst);
  printf("ORT round trip (external data at offset 4, inline bias, Loop body): max error %g\n", worst);
  ort_outputs_free(&o, 1);
  ort_session_close(s);
  ort_close(rt);
  unlink(path);
  unlink(data);
}

static void test_misuse(const char *dir) {
  err e = {0};
  onnx_graph *g;
  char path[1024];
  snprintf(path, sizeof path, "%s/bad.onnx", dir);
  onnx_graph_init("t", &g, &e);
  const char *in[1] = {"a"}, *o1[1] = {"b"}, *o2[1] = {"c"};
  EXPECT(onnx_graph_add_node(g, "Relu", "/same", 1, in, 1, o1) != NULL, "first node");
  EXPECT(onnx_graph_add_node(g, "Relu", "/same", 1, o1, 1, o2) == NULL, "duplicate accepted");
  EXPECT(write_model(g, path, &e) != 0 && strstr(e.msg, "duplicate node name '/same'"), "msg: %s", e.msg);
  onnx_graph_free(g);
  err_clear(&e);
  onnx_graph_init("t", &g, &e);
  const char *missing[2] = {"a", NULL};
  onnx_node *n = onnx_graph_add_node(g, "Add", "/add", 2, missing, 1, o1);
  onnx_node_attr_int(n, "x", 1); /* no-op on NULL */
  EXPECT(write_model(g, path, &e) != 0 && strstr(e.msg, "input 1 is missing"), "msg: %s", e.msg);
  onnx_graph_free(g);
  unlink(path);
}

int main(void) {
  const char *base = getenv("TMPDIR_BASE") ? getenv("TMPDIR_BASE") : "/tmp";
  char dir[256];
  snprintf(dir, sizeof dir, "%.200s/test_export_graph.%d", base, (int)getpid());
  mkdir(dir, 0755);
  test_ort_roundtrip(dir);
  test_misuse(dir);
  rmdir(dir);
  printf("%s\n", n_fail ? "FAIL" : "PASS");
  return n_fail ? 1 : 0;
}
