/* ort: ONNX Runtime loaded at run time, driven through its C API (DESIGN.md "Parity").
 *
 * libonnxruntime.so.1 is dlopen'ed (RTLD_NOW | RTLD_LOCAL), never linked: the tool builds and
 * runs everything else without it. The path is, in order: the explicit argument (--ort-lib),
 * $ORT_LIB, then GPTOSS_ORT_DEFAULT_LIB (where `make setup` installed the npm package
 * onnxruntime-node@1.30.0; docs/onnxruntime.md). The C API is reached with OrtGetApiBase() and
 * OrtApiBase::GetApi(ORT_API_NEED); OrtApi is an append-only table of function pointers, and
 * the few slots used here are declared by this project in ort.c (indices from the official
 * onnxruntime_c_api.h, docs/toolchain.md section 7), so no ORT header is needed to build.
 *
 * Guarantees: every ORT failure (an OrtStatus) becomes an err with ORT's own text and the model
 * path; a missing library, a file that is not ONNX Runtime, or a release older than 1.22 is a
 * clean error saying what was found and how to fix it. Nothing here prints: ORT's own logger is
 * set to fatal-only, its messages reach the caller through the returned statuses. Local (no MPI);
 * one runtime may hold several sessions; a session is not shared between threads. */
#ifndef GPTOSS_ORT_H
#define GPTOSS_ORT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* The OrtApi version requested from the library: ONNX Runtime 1.N serves API versions 1..N, so
 * this is also the oldest usable release (1.22: first release implementing ai.onnx opset 23, the
 * export target). */
#define ORT_API_NEED 22
#define ORT_MIN_RELEASE "1.22"

/* ONNX TensorProto element types (the values ORT uses too). */
enum {
  ORT_T_FLOAT = 1, ORT_T_UINT8 = 2, ORT_T_INT8 = 3, ORT_T_UINT16 = 4, ORT_T_INT16 = 5,
  ORT_T_INT32 = 6, ORT_T_INT64 = 7, ORT_T_STRING = 8, ORT_T_BOOL = 9, ORT_T_FLOAT16 = 10,
  ORT_T_DOUBLE = 11, ORT_T_UINT32 = 12, ORT_T_UINT64 = 13, ORT_T_BFLOAT16 = 16
};
#define ORT_MAX_DIMS 8

typedef struct ort_runtime ort_runtime; /* the loaded library + OrtApi + OrtEnv */
typedef struct ort_session ort_session; /* one loaded model */

/* Load ONNX Runtime. lib: explicit path, or NULL = $ORT_LIB if set and non-empty, else the
 * default installed by `make setup`. Errors: library missing, not an ONNX Runtime library, release
 * too old (says which version was found). 0 ok, -1 error; caller owns *out (ort_close). */
int ort_open(const char *lib, ort_runtime **out, err *e);
/* Release the environment; the library stays mapped (see ort.c). NULL is a no-op. */
void ort_close(ort_runtime *rt);
/* The library's version string, e.g. "1.30.0" (borrowed, valid until ort_close). */
const char *ort_version(const ort_runtime *rt);
/* The path the library was loaded from (borrowed, valid until ort_close). */
const char *ort_lib_path(const ort_runtime *rt);
/* The compiled-in default library path ("" when the build defined none). */
const char *ort_default_lib(void);

typedef struct {
  int intra_threads;                /* intra-op threads; 0 = ORT default (one per physical core) */
  int opt_level;                    /* graph optimization: 0 disabled, 1 basic, 2 extended, 99 all */
  const char *optimized_model_path; /* write the optimized graph here; NULL = don't */
  int disable_prepacking;           /* 1: session config "session.disable_prepacking" = "1" (no
                                     * second, kernel-shaped copy of the weights) */
  int disable_arena;                /* 1: no CPU memory arena (temporaries go back to malloc) */
} ort_session_opts;

/* Defaults: intra_threads 0, opt_level 99, no optimized-model dump, prepacking and arena on. */
ort_session_opts ort_session_opts_default(void);

/* Load a model by path (so external data resolves relative to its directory). o NULL = defaults.
 * 0 ok, -1 error naming model_path with ORT's text; caller owns *out (ort_session_close). */
int ort_session_open(ort_runtime *rt, const char *model_path, const ort_session_opts *o,
                     ort_session **out, err *e);
/* NULL is a no-op. The runtime must outlive its sessions. */
void ort_session_close(ort_session *s);

/* One graph input or output as the loaded session sees it. */
typedef struct {
  char name[128];
  int onnx_type;     /* ONNXType: 1 tensor, 2 sequence, 3 map, 4 opaque, 5 sparse, 6 optional */
  int elem_type;     /* ORT_T_* for tensors, 0 otherwise */
  int n_dims;        /* rank (0 for scalars and for non-tensors) */
  int64_t shape[ORT_MAX_DIMS];         /* -1 for a symbolic or unknown dimension */
  char dim_names[ORT_MAX_DIMS][64];    /* symbolic dimension name, "" for fixed or unnamed */
} ort_io_info;

/* The session's inputs and outputs, in graph order (borrowed arrays, valid until
 * ort_session_close). Any out-pointer may be NULL. */
void ort_session_io(const ort_session *s, const ort_io_info **inputs, int *n_in,
                    const ort_io_info **outputs, int *n_out);
/* The model path the session was opened from (borrowed). */
const char *ort_session_path(const ort_session *s);

/* One fetched output. data is malloc'd (n_bytes, row-major); free with ort_outputs_free. */
typedef struct {
  char name[128];
  int elem_type;     /* ORT_T_* */
  int n_dims;
  int64_t shape[ORT_MAX_DIMS];
  void *data;
  size_t n_bytes;
} ort_value_out;

/* One input of a run: a tensor borrowed from the caller (ORT only reads it). */
typedef struct {
  const char *name;
  int elem_type;     /* ORT_T_* (numeric) */
  int n_dims;
  int64_t shape[ORT_MAX_DIMS]; /* any dimension may be 0 (e.g. an empty KV cache) */
  const void *data;  /* row-major; may be NULL when the tensor has no elements */
} ort_value_in;

/* Run with the given inputs (names as in the graph, each at most once; ORT itself reports a
 * missing or misshaped one) and fetch outputs as ort_run_ids does. 0 ok, -1 error. */
int ort_run(ort_session *s, int n_in, const ort_value_in *ins, const char *const *names,
            int n_out, ort_value_out *outs, err *e);
/* Run with the model's single int64 input `input_ids` = ids [batch, T] and fetch outputs:
 * the n_out named ones in that order, or, when names == NULL, all outputs in graph order (then
 * n_out must equal the model's output count). outs[n_out] is filled; on error nothing is left
 * allocated in outs. Numeric tensor outputs only (no strings). 0 ok, -1 error. */
int ort_run_ids(ort_session *s, const int64_t *ids, int batch, int T, const char *const *names,
                int n_out, ort_value_out *outs, err *e);
/* The same for a sub-model (`export --layers A:B`) whose single input is float `hidden_in`
 * = x [batch, T, D]. */
int ort_run_hidden(ort_session *s, const float *x, int batch, int T, int D,
                   const char *const *names, int n_out, ort_value_out *outs, err *e);
/* Free the data of outs[0..n) (safe on zeroed or already-freed entries). */
void ort_outputs_free(ort_value_out *outs, int n);
/* Bytes per element of an ORT_T_* type, 0 if unsupported here. */
size_t ort_elem_size(int elem_type);

#endif
