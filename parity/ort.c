/* ort: ONNX Runtime through dlopen and our own declaration of the C API (see ort.h). */
#define _GNU_SOURCE
#include "ort.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- our declaration of the ORT C API (the subset used) ------------------------------------
 * Opaque handle types, function-pointer types with the official signatures, and the slot of
 * each function in struct OrtApi (0-based; onnxruntime_c_api.h, docs/toolchain.md section 7).
 * OrtApi only ever grows at its end, so these indices hold for every API version >= the one
 * that introduced them (all of these exist since API 1..2; we request ORT_API_NEED).
 * tests/test_ort.c exercises every slot below on the real library with an observable effect. */
typedef struct OrtStatus OrtStatus;
typedef struct OrtEnv OrtEnv;
typedef struct OrtSession OrtSession;
typedef struct OrtSessionOptions OrtSessionOptions;
typedef struct OrtValue OrtValue;
typedef struct OrtMemoryInfo OrtMemoryInfo;
typedef struct OrtTypeInfo OrtTypeInfo;
typedef struct OrtTensorTypeAndShapeInfo OrtTensorTypeAndShapeInfo;
typedef struct OrtRunOptions OrtRunOptions;
typedef struct OrtAllocator OrtAllocator; /* only passed back to ORT; its layout is not used */

typedef struct {
  const void *(*GetApi)(uint32_t version); /* const OrtApi *, NULL if version unsupported */
  const char *(*GetVersionString)(void);
} OrtApiBase;
typedef const OrtApiBase *(*fn_OrtGetApiBase)(void);

enum { ORT_LOG_FATAL = 4 };                          /* OrtLoggingLevel */
enum { ORT_ARENA_ALLOCATOR = 1, ORT_MEM_DEFAULT = 0 }; /* OrtAllocatorType, OrtMemType */

#define ORT_SLOTS(X)                                                                            \
  X(GetErrorMessage, 2, const char *, (const OrtStatus *))                                      \
  X(CreateEnv, 3, OrtStatus *, (int level, const char *logid, OrtEnv **out))                    \
  X(CreateSession, 7, OrtStatus *,                                                              \
    (const OrtEnv *, const char *path, const OrtSessionOptions *, OrtSession **out))            \
  X(Run, 9, OrtStatus *,                                                                        \
    (OrtSession *, const OrtRunOptions *, const char *const *in_names,                          \
     const OrtValue *const *inputs, size_t n_in, const char *const *out_names, size_t n_out,    \
     OrtValue **outputs))                                                                       \
  X(CreateSessionOptions, 10, OrtStatus *, (OrtSessionOptions **out))                           \
  X(SetOptimizedModelFilePath, 11, OrtStatus *, (OrtSessionOptions *, const char *path))        \
  X(DisableCpuMemArena, 19, OrtStatus *, (OrtSessionOptions *))                                \
  X(SetSessionGraphOptimizationLevel, 23, OrtStatus *, (OrtSessionOptions *, int level))        \
  X(SetIntraOpNumThreads, 24, OrtStatus *, (OrtSessionOptions *, int n))                        \
  X(SessionGetInputCount, 30, OrtStatus *, (const OrtSession *, size_t *out))                   \
  X(SessionGetOutputCount, 31, OrtStatus *, (const OrtSession *, size_t *out))                  \
  X(SessionGetInputTypeInfo, 33, OrtStatus *, (const OrtSession *, size_t i, OrtTypeInfo **))   \
  X(SessionGetOutputTypeInfo, 34, OrtStatus *, (const OrtSession *, size_t i, OrtTypeInfo **))  \
  X(SessionGetInputName, 36, OrtStatus *,                                                       \
    (const OrtSession *, size_t i, OrtAllocator *, char **out))                                 \
  X(SessionGetOutputName, 37, OrtStatus *,                                                      \
    (const OrtSession *, size_t i, OrtAllocator *, char **out))                                 \
  X(CreateTensorWithDataAsOrtValue, 49, OrtStatus *,                                            \
    (const OrtMemoryInfo *, void *data, size_t n_bytes, const int64_t *shape, size_t n_dims,    \
     int elem_type, OrtValue **out))                                                            \
  X(GetTensorMutableData, 51, OrtStatus *, (OrtValue *, void **out))                            \
  X(CastTypeInfoToTensorInfo, 55, OrtStatus *,                                                  \
    (const OrtTypeInfo *, const OrtTensorTypeAndShapeInfo **out))                               \
  X(GetOnnxTypeFromTypeInfo, 56, OrtStatus *, (const OrtTypeInfo *, int *out))                  \
  X(GetTensorElementType, 60, OrtStatus *, (const OrtTensorTypeAndShapeInfo *, int *out))       \
  X(GetDimensionsCount, 61, OrtStatus *, (const OrtTensorTypeAndShapeInfo *, size_t *out))      \
  X(GetDimensions, 62, OrtStatus *, (const OrtTensorTypeAndShapeInfo *, int64_t *, size_t))     \
  X(GetSymbolicDimensions, 63, OrtStatus *,                                                     \
    (const OrtTensorTypeAndShapeInfo *, const char **names, size_t n))                          \
  X(GetTensorTypeAndShape, 65, OrtStatus *, (const OrtValue *, OrtTensorTypeAndShapeInfo **))   \
  X(CreateCpuMemoryInfo, 69, OrtStatus *, (int alloc_type, int mem_type, OrtMemoryInfo **out))  \
  X(AllocatorFree, 76, OrtStatus *, (OrtAllocator *, void *p))                                  \
  X(GetAllocatorWithDefaultOptions, 78, OrtStatus *, (OrtAllocator **out))                      \
  X(ReleaseEnv, 92, void, (OrtEnv *))                                                           \
  X(ReleaseStatus, 93, void, (OrtStatus *))                                                     \
  X(ReleaseMemoryInfo, 94, void, (OrtMemoryInfo *))                                             \
  X(ReleaseSession, 95, void, (OrtSession *))                                                   \
  X(ReleaseValue, 96, void, (OrtValue *))                                                       \
  X(ReleaseTypeInfo, 98, void, (OrtTypeInfo *))                                                 \
  X(ReleaseTensorTypeAndShapeInfo, 99, void, (OrtTensorTypeAndShapeInfo *))                    \
  X(ReleaseSessionOptions, 100, void, (OrtSessionOptions *))                                   \
  X(AddSessionConfigEntry, 130, OrtStatus *,                                                    \
    (OrtSessionOptions *, const char *key, const char *value))

#define X_TYPEDEF(name, slot, ret, args) typedef ret(*fn_##name) args;
ORT_SLOTS(X_TYPEDEF)
#undef X_TYPEDEF

typedef struct {
#define X_MEMBER(name, slot, ret, args) fn_##name name;
  ORT_SLOTS(X_MEMBER)
#undef X_MEMBER
} ort_api;

typedef void (*ort_fn)(void); /* the element type of the OrtApi table */

#ifndef GPTOSS_ORT_DEFAULT_LIB
#define GPTOSS_ORT_DEFAULT_LIB ""
#endif

struct ort_runtime {
  void *dl;
  ort_api f;
  OrtEnv *env;
  OrtMemoryInfo *cpu;      /* describes caller-owned input buffers */
  OrtAllocator *alloc;     /* ORT's default allocator (for name strings); not owned */
  char version[32];
  char path[4096];
};

struct ort_session {
  ort_runtime *rt;
  OrtSession *s;
  char path[4096];
  int n_in, n_out;
  ort_io_info *in, *out;   /* [n_in], [n_out] */
};

const char *ort_default_lib(void) { return GPTOSS_ORT_DEFAULT_LIB; }
const char *ort_version(const ort_runtime *rt) { return rt->version; }
const char *ort_lib_path(const ort_runtime *rt) { return rt->path; }
const char *ort_session_path(const ort_session *s) { return s->path; }

ort_session_opts ort_session_opts_default(void) {
  ort_session_opts o = {0, 99, NULL, 0, 0};
  return o;
}

size_t ort_elem_size(int t) {
  switch (t) {
    case ORT_T_UINT8: case ORT_T_INT8: case ORT_T_BOOL: return 1;
    case ORT_T_UINT16: case ORT_T_INT16: case ORT_T_FLOAT16: case ORT_T_BFLOAT16: return 2;
    case ORT_T_FLOAT: case ORT_T_INT32: case ORT_T_UINT32: return 4;
    case ORT_T_INT64: case ORT_T_UINT64: case ORT_T_DOUBLE: return 8;
    default: return 0;
  }
}

/* Turn a failed OrtStatus into e: "<context>: <ORT's message>"; releases the status. */
static int st_fail(const ort_runtime *rt, OrtStatus *st, err *e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int st_fail(const ort_runtime *rt, OrtStatus *st, err *e, const char *fmt, ...) {
  char ctx[sizeof e->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx, sizeof ctx, fmt, ap);
  va_end(ap);
  const char *m = rt->f.GetErrorMessage(st);
  err_set(e, EXIT_RUNTIME, "%s: %s", ctx, m && *m ? m : "(no message)");
  rt->f.ReleaseStatus(st);
  return -1;
}

/* ---- runtime ---------------------------------------------------------------------------- */

/* CreateEnv in a frame of its own: ONNX Runtime 1.30 leaks one 14-byte block inside it (once
 * per process), and tests/lsan.supp suppresses leaks under this function only. */
__attribute__((noinline)) static OrtStatus *ort_create_env(const ort_runtime *rt, OrtEnv **env) {
  return rt->f.CreateEnv(ORT_LOG_FATAL, "gptoss-mpi", env);
}

static const char *lib_source(const char *lib, const char **path) {
  if (lib) { *path = lib; return "--ort-lib"; }
  const char *env = getenv("ORT_LIB");
  if (env && *env) { *path = env; return "ORT_LIB"; }
  *path = GPTOSS_ORT_DEFAULT_LIB;
  return "default";
}

/* "1.30.0" -> 1, 30; -1 if not of that form. */
static int parse_version(const char *v, int *major, int *minor) {
  char *end;
  long a = strtol(v, &end, 10);
  if (end == v || *end != '.') return -1;
  const char *p = end + 1;
  long b = strtol(p, &end, 10);
  if (end == p || a < 0 || b < 0 || a > 1000 || b > 100000) return -1;
  *major = (int)a;
  *minor = (int)b;
  return 0;
}

int ort_open(const char *lib, ort_runtime **out, err *e) {
  *out = NULL;
  const char *path;
  const char *src = lib_source(lib, &path);
  static const char fix[] = "install it with `make setup` or point --ort-lib/ORT_LIB at "
                            "libonnxruntime.so.1 of an ONNX Runtime release >= " ORT_MIN_RELEASE;
  if (!*path && lib)
    return err_set(e, EXIT_USAGE, "--ort-lib: the path is empty (leave the option out to use "
                   "the default %s)", *GPTOSS_ORT_DEFAULT_LIB ? GPTOSS_ORT_DEFAULT_LIB : "(none built in)");
  if (!*path)
    return err_set(e, EXIT_RUNTIME, "ONNX Runtime library not configured (this build has no "
                   "default path): %s", fix);
  if (strlen(path) >= sizeof((ort_runtime *)0)->path)
    return err_set(e, EXIT_RUNTIME, "ONNX Runtime library path too long (%zu bytes)", strlen(path));
  struct stat sb;
  if (strchr(path, '/') && stat(path, &sb) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return err_set(e, EXIT_RUNTIME, "ONNX Runtime library %s (%s) not found: %s", path, src, fix);
    return err_errno(e, errno, "ONNX Runtime library %s (%s)", path, src);
  }
  /* dlopen would block on a FIFO */
  if (strchr(path, '/') && !S_ISREG(sb.st_mode))
    return err_set(e, EXIT_RUNTIME, "ONNX Runtime library %s (%s) is not a regular file: %s", path,
                   src, fix);

  ort_runtime *rt = calloc(1, sizeof *rt);
  if (!rt) return err_set(e, EXIT_RUNTIME, "out of memory");
  snprintf(rt->path, sizeof rt->path, "%s", path);
  dlerror();
  rt->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!rt->dl) {
    const char *d = dlerror();
    err_set(e, EXIT_RUNTIME, "cannot load ONNX Runtime library %s (%s): %s; %s", path, src,
            d ? d : "unknown dlopen error", fix);
    free(rt);
    return -1;
  }
  /* ISO C has no object-to-function pointer conversion; POSIX guarantees this one (dlsym). */
  fn_OrtGetApiBase get_base;
  *(void **)&get_base = dlsym(rt->dl, "OrtGetApiBase");
  const OrtApiBase *base = get_base ? get_base() : NULL;
  const char *ver = base && base->GetVersionString ? base->GetVersionString() : NULL;
  if (!base || !base->GetApi || !ver) {
    err_set(e, EXIT_RUNTIME, "%s (%s) is not an ONNX Runtime library (no usable OrtGetApiBase); "
            "%s", path, src, fix);
    goto fail;
  }
  snprintf(rt->version, sizeof rt->version, "%s", ver);
  /* Check the release before GetApi: an old ORT prints to stderr when asked for a newer API. */
  int major = 0, minor = 0;
  if (parse_version(rt->version, &major, &minor) == 0 &&
      (major < 1 || (major == 1 && minor < ORT_API_NEED))) {
    err_set(e, EXIT_RUNTIME, "ONNX Runtime %s at %s (%s) is too old: gptoss-mpi needs C API "
            "version %d (ONNX Runtime >= %s); point --ort-lib/ORT_LIB at a newer libonnxruntime.so.1",
            rt->version, path, src, ORT_API_NEED, ORT_MIN_RELEASE);
    goto fail;
  }
  const ort_fn *tbl = (const ort_fn *)base->GetApi(ORT_API_NEED);
  if (!tbl) {
    err_set(e, EXIT_RUNTIME, "ONNX Runtime %s at %s (%s) does not provide C API version %d "
            "(ONNX Runtime >= %s needed); point --ort-lib/ORT_LIB at a newer libonnxruntime.so.1",
            rt->version, path, src, ORT_API_NEED, ORT_MIN_RELEASE);
    goto fail;
  }
#define X_BIND(name, slot, ret, args)                                                           \
  rt->f.name = (fn_##name)tbl[slot];                                                            \
  if (!rt->f.name) {                                                                            \
    err_set(e, EXIT_RUNTIME, "ONNX Runtime %s at %s: C API slot %d (%s) is empty", rt->version, \
            path, slot, #name);                                                                 \
    goto fail;                                                                                  \
  }
  ORT_SLOTS(X_BIND)
#undef X_BIND

  OrtStatus *st = ort_create_env(rt, &rt->env);
  if (st) { st_fail(rt, st, e, "ONNX Runtime %s: cannot create the environment", path); goto fail; }
  st = rt->f.CreateCpuMemoryInfo(ORT_ARENA_ALLOCATOR, ORT_MEM_DEFAULT, &rt->cpu);
  if (st) { st_fail(rt, st, e, "ONNX Runtime %s: cannot describe CPU memory", path); goto fail; }
  st = rt->f.GetAllocatorWithDefaultOptions(&rt->alloc);
  if (st) { st_fail(rt, st, e, "ONNX Runtime %s: no default allocator", path); goto fail; }
  *out = rt;
  return 0;
fail:
  ort_close(rt);
  return -1;
}

void ort_close(ort_runtime *rt) {
  if (!rt) return;
  if (rt->cpu) rt->f.ReleaseMemoryInfo(rt->cpu);
  if (rt->env) rt->f.ReleaseEnv(rt->env);
  /* No dlclose: ONNX Runtime keeps process-wide state (its logging manager, protobuf and thread
   * pool singletons) whose destructors are not safe to run while the process continues, and a
   * later ort_open would load it again anyway. The mapping is reused by the next dlopen. */
  free(rt);
}

/* ---- sessions --------------------------------------------------------------------------- */

/* Fill one io description from an OrtTypeInfo (released here). */
static int io_describe(ort_session *s, OrtTypeInfo *ti, ort_io_info *io, err *e) {
  const ort_api *f = &s->rt->f;
  const OrtTensorTypeAndShapeInfo *tt = NULL;
  const char *sym[ORT_MAX_DIMS];
  size_t nd = 0;
  OrtStatus *st = f->GetOnnxTypeFromTypeInfo(ti, &io->onnx_type);
  if (!st) st = f->CastTypeInfoToTensorInfo(ti, &tt);
  if (!st && tt) st = f->GetTensorElementType(tt, &io->elem_type);
  if (!st && tt) st = f->GetDimensionsCount(tt, &nd);
  if (!st && nd > ORT_MAX_DIMS) {
    f->ReleaseTypeInfo(ti);
    return err_set(e, EXIT_RUNTIME, "%s: graph value '%s' has rank %zu (at most %d supported)",
                   s->path, io->name, nd, ORT_MAX_DIMS);
  }
  if (!st && tt && nd) st = f->GetDimensions(tt, io->shape, nd);
  if (!st && tt && nd) st = f->GetSymbolicDimensions(tt, sym, nd);
  if (st) {
    f->ReleaseTypeInfo(ti);
    return st_fail(s->rt, st, e, "%s: cannot describe graph value '%s'", s->path, io->name);
  }
  io->n_dims = (int)nd;
  for (size_t d = 0; d < nd; d++)
    snprintf(io->dim_names[d], sizeof io->dim_names[d], "%s", sym[d] ? sym[d] : "");
  f->ReleaseTypeInfo(ti);
  return 0;
}

/* Describe all inputs (is_out 0) or outputs (1) of the session. */
static int io_collect(ort_session *s, int is_out, err *e) {
  const ort_api *f = &s->rt->f;
  size_t n = 0;
  OrtStatus *st = is_out ? f->SessionGetOutputCount(s->s, &n) : f->SessionGetInputCount(s->s, &n);
  if (st) return st_fail(s->rt, st, e, "%s: cannot count graph %s", s->path,
                         is_out ? "outputs" : "inputs");
  if (n > 100000) return err_set(e, EXIT_RUNTIME, "%s: %zu graph values", s->path, n);
  ort_io_info *v = calloc(n ? n : 1, sizeof *v);
  if (!v) return err_set(e, EXIT_RUNTIME, "out of memory");
  if (is_out) { s->out = v; s->n_out = (int)n; } else { s->in = v; s->n_in = (int)n; }
  for (size_t i = 0; i < n; i++) {
    char *name = NULL;
    st = is_out ? f->SessionGetOutputName(s->s, i, s->rt->alloc, &name)
                : f->SessionGetInputName(s->s, i, s->rt->alloc, &name);
    if (st) return st_fail(s->rt, st, e, "%s: cannot name graph %s %zu", s->path,
                           is_out ? "output" : "input", i);
    size_t len = strlen(name);
    if (len < sizeof v[i].name) memcpy(v[i].name, name, len + 1);
    st = f->AllocatorFree(s->rt->alloc, name);
    if (st) return st_fail(s->rt, st, e, "%s: cannot free a name", s->path);
    if (len >= sizeof v[i].name)
      return err_set(e, EXIT_RUNTIME, "%s: graph %s %zu has a name of %zu bytes (at most %zu)",
                     s->path, is_out ? "output" : "input", i, len, sizeof v[i].name - 1);
    OrtTypeInfo *ti = NULL;
    st = is_out ? f->SessionGetOutputTypeInfo(s->s, i, &ti) : f->SessionGetInputTypeInfo(s->s, i, &ti);
    if (st) return st_fail(s->rt, st, e, "%s: cannot get the type of '%s'", s->path, v[i].name);
    if (io_describe(s, ti, &v[i], e)) return -1;
  }
  return 0;
}

int ort_session_open(ort_runtime *rt, const char *model_path, const ort_session_opts *o,
                     ort_session **out, err *e) {
  *out = NULL;
  ort_session_opts def = ort_session_opts_default();
  if (!o) o = &def;
  if (o->intra_threads < 0)
    return err_set(e, EXIT_USAGE, "intra-op threads must be >= 0 (got %d)", o->intra_threads);
  if (o->opt_level != 0 && o->opt_level != 1 && o->opt_level != 2 && o->opt_level != 99)
    return err_set(e, EXIT_USAGE, "graph optimization level must be 0, 1, 2 or 99 (got %d)",
                   o->opt_level);
  if (strlen(model_path) >= sizeof((ort_session *)0)->path)
    return err_set(e, EXIT_RUNTIME, "model path too long (%zu bytes)", strlen(model_path));
  struct stat sb;
  if (stat(model_path, &sb) != 0) return err_errno(e, errno, "%s: cannot open model", model_path);
  if (!S_ISREG(sb.st_mode)) return err_set(e, EXIT_RUNTIME, "%s: not a regular file", model_path);

  ort_session *s = calloc(1, sizeof *s);
  if (!s) return err_set(e, EXIT_RUNTIME, "out of memory");
  s->rt = rt;
  snprintf(s->path, sizeof s->path, "%s", model_path);
  const ort_api *f = &rt->f;
  OrtSessionOptions *so = NULL;
  OrtStatus *st = f->CreateSessionOptions(&so);
  if (!st) st = f->SetIntraOpNumThreads(so, o->intra_threads);
  if (!st) st = f->SetSessionGraphOptimizationLevel(so, o->opt_level);
  if (!st && o->optimized_model_path) st = f->SetOptimizedModelFilePath(so, o->optimized_model_path);
  /* prepacking copies every weight a kernel prepacks (MatMul's B) into a second, kernel-shaped
   * buffer: for a sub-model of 120b widths it doubles the resident weights */
  if (!st && o->disable_prepacking) st = f->AddSessionConfigEntry(so, "session.disable_prepacking", "1");
  /* the CPU arena keeps the largest set of live temporaries it ever held, grown in steps */
  if (!st && o->disable_arena) st = f->DisableCpuMemArena(so);
  if (st) {
    st_fail(rt, st, e, "%s: cannot set session options", model_path);
    goto fail;
  }
  st = f->CreateSession(rt->env, model_path, so, &s->s);
  if (st) {
    st_fail(rt, st, e, "%s: ONNX Runtime cannot load the model", model_path);
    goto fail;
  }
  f->ReleaseSessionOptions(so);
  so = NULL;
  if (io_collect(s, 0, e) || io_collect(s, 1, e)) goto fail;
  *out = s;
  return 0;
fail:
  if (so) f->ReleaseSessionOptions(so);
  ort_session_close(s);
  return -1;
}

void ort_session_close(ort_session *s) {
  if (!s) return;
  if (s->s) s->rt->f.ReleaseSession(s->s);
  free(s->in);
  free(s->out);
  free(s);
}

void ort_session_io(const ort_session *s, const ort_io_info **inputs, int *n_in,
                    const ort_io_info **outputs, int *n_out) {
  if (inputs) *inputs = s->in;
  if (n_in) *n_in = s->n_in;
  if (outputs) *outputs = s->out;
  if (n_out) *n_out = s->n_out;
}

/* ---- running ---------------------------------------------------------------------------- */

void ort_outputs_free(ort_value_out *outs, int n) {
  for (int i = 0; outs && i < n; i++) {
    free(outs[i].data);
    outs[i].data = NULL;
    outs[i].n_bytes = 0;
  }
}

/* Copy one ORT output value into o (o->name already set). */
static int value_copy(ort_session *s, OrtValue *v, ort_value_out *o, err *e) {
  const ort_api *f = &s->rt->f;
  OrtTensorTypeAndShapeInfo *tt = NULL;
  size_t nd = 0;
  int type = 0;
  OrtStatus *st = f->GetTensorTypeAndShape(v, &tt);
  if (!st) st = f->GetTensorElementType(tt, &type);
  if (!st) st = f->GetDimensionsCount(tt, &nd);
  if (!st && nd <= ORT_MAX_DIMS && nd) st = f->GetDimensions(tt, o->shape, nd);
  if (tt) f->ReleaseTensorTypeAndShapeInfo(tt);
  if (st) return st_fail(s->rt, st, e, "%s: output '%s' is not a readable tensor", s->path, o->name);
  if (nd > ORT_MAX_DIMS)
    return err_set(e, EXIT_RUNTIME, "%s: output '%s' has rank %zu (at most %d supported)", s->path,
                   o->name, nd, ORT_MAX_DIMS);
  size_t es = ort_elem_size(type);
  if (!es)
    return err_set(e, EXIT_RUNTIME, "%s: output '%s' has element type %d (numeric tensors only)",
                   s->path, o->name, type);
  size_t n_bytes = es;
  for (size_t d = 0; d < nd; d++) {
    int64_t x = o->shape[d];
    if (x < 0 || (x > 0 && n_bytes > SIZE_MAX / (uint64_t)x))
      return err_set(e, EXIT_RUNTIME, "%s: output '%s' dimension %zu is %lld", s->path, o->name,
                     d, (long long)x);
    n_bytes *= (size_t)x;
  }
  void *src = NULL;
  if (n_bytes) {
    st = f->GetTensorMutableData(v, &src);
    if (st) return st_fail(s->rt, st, e, "%s: cannot read output '%s'", s->path, o->name);
  }
  o->data = malloc(n_bytes ? n_bytes : 1);
  if (!o->data) return err_set(e, EXIT_RUNTIME, "%s: out of memory for output '%s' (%zu bytes)",
                               s->path, o->name, n_bytes);
  if (n_bytes) memcpy(o->data, src, n_bytes);
  o->elem_type = type;
  o->n_dims = (int)nd;
  o->n_bytes = n_bytes;
  return 0;
}

int ort_run(ort_session *s, int n_in, const ort_value_in *ins, const char *const *names,
            int n_out, ort_value_out *outs, err *e) {
  const ort_api *f = &s->rt->f;
  static const char no_data = 0; /* stands in for the data of a tensor without elements */
  if (n_in <= 0 || n_in > 100000)
    return err_set(e, EXIT_USAGE, "%s: a run needs between 1 and 100000 inputs (got %d)", s->path, n_in);
  if (n_out <= 0 || (!names && n_out != s->n_out))
    return err_set(e, EXIT_USAGE, "%s: asked for %d outputs%s; the model has %d", s->path, n_out,
                   names ? "" : " (all)", s->n_out);
  const char **onames = malloc((size_t)n_out * sizeof *onames);
  const char **inames = malloc((size_t)n_in * sizeof *inames);
  OrtValue **ovals = calloc((size_t)n_out, sizeof *ovals), **ivals = calloc((size_t)n_in, sizeof *ivals);
  if (!onames || !inames || !ovals || !ivals) {
    free(onames); free(inames); free(ovals); free(ivals);
    return err_set(e, EXIT_RUNTIME, "out of memory");
  }
  memset(outs, 0, (size_t)n_out * sizeof *outs);
  int rc = -1;
  for (int i = 0; i < n_out; i++) {
    onames[i] = names ? names[i] : s->out[i].name;
    if (strlen(onames[i]) >= sizeof outs[i].name) {
      err_set(e, EXIT_USAGE, "%s: output name '%.40s...' too long", s->path, onames[i]);
      goto done;
    }
    snprintf(outs[i].name, sizeof outs[i].name, "%s", onames[i]);
  }
  for (int i = 0; i < n_in; i++) {
    const ort_value_in *v = &ins[i];
    const size_t es = ort_elem_size(v->elem_type);
    size_t n_bytes = es;
    if (!es || v->n_dims < 0 || v->n_dims > ORT_MAX_DIMS) {
      err_set(e, EXIT_USAGE, "%s: input '%s': element type %d, rank %d not supported", s->path,
              v->name, v->elem_type, v->n_dims);
      goto done;
    }
    for (int d = 0; d < v->n_dims; d++) {
      if (v->shape[d] < 0 || (v->shape[d] > 0 && n_bytes > SIZE_MAX / (uint64_t)v->shape[d])) {
        err_set(e, EXIT_USAGE, "%s: input '%s': dimension %d is %lld", s->path, v->name, d,
                (long long)v->shape[d]);
        goto done;
      }
      n_bytes *= (size_t)v->shape[d];
    }
    if (n_bytes && !v->data) {
      err_set(e, EXIT_USAGE, "%s: input '%s' has %zu bytes but no data", s->path, v->name, n_bytes);
      goto done;
    }
    inames[i] = v->name;
    /* ORT only reads an input tensor; the API takes void * for both directions. */
    OrtStatus *st = f->CreateTensorWithDataAsOrtValue(
        s->rt->cpu, n_bytes ? (void *)v->data : (void *)&no_data, n_bytes, v->shape,
        (size_t)v->n_dims, v->elem_type, &ivals[i]);
    if (st) {
      st_fail(s->rt, st, e, "%s: cannot wrap input '%s'", s->path, v->name);
      goto done;
    }
  }
  OrtStatus *st = f->Run(s->s, NULL, inames, (const OrtValue *const *)ivals, (size_t)n_in, onames,
                         (size_t)n_out, ovals);
  if (st) {
    char shape[128] = "";
    for (int d = 0; d < ins[0].n_dims; d++) {
      size_t k = strlen(shape);
      snprintf(shape + k, sizeof shape - k, "%s%lld", d ? ", " : "", (long long)ins[0].shape[d]);
    }
    st_fail(s->rt, st, e, "%s: ONNX Runtime run failed (%s [%s]%s)", s->path, ins[0].name, shape,
            n_in > 1 ? ", ..." : "");
    goto done;
  }
  for (int i = 0; i < n_out; i++)
    if (value_copy(s, ovals[i], &outs[i], e)) goto done;
  rc = 0;
done:
  for (int i = 0; i < n_out; i++)
    if (ovals[i]) f->ReleaseValue(ovals[i]);
  for (int i = 0; i < n_in; i++)
    if (ivals[i]) f->ReleaseValue(ivals[i]);
  if (rc) ort_outputs_free(outs, n_out);
  free(onames);
  free(inames);
  free(ovals);
  free(ivals);
  return rc;
}

/* Run with the model's single input `in_name` of element type elem and shape [batch, T] (width
 * 0) or [batch, T, width] (ort_run_ids, ort_run_hidden). */
static int run_one_input(ort_session *s, const char *in_name, int elem, const void *data,
                         int batch, int T, int width, const char *const *names, int n_out,
                         ort_value_out *outs, err *e) {
  const int n_dims = width ? 3 : 2;
  const size_t elem_bytes = ort_elem_size(elem);
  if (s->n_in != 1 || strcmp(s->in[0].name, in_name) != 0 || s->in[0].elem_type != elem)
    return err_set(e, EXIT_RUNTIME, "%s: expected exactly one graph input, %s '%s'; "
                   "found %d input(s)%s%s", s->path, elem == ORT_T_INT64 ? "int64" : "float",
                   in_name, s->n_in, s->n_in ? ", the first is " : "", s->n_in ? s->in[0].name : "");
  if (s->in[0].n_dims != n_dims)
    return err_set(e, EXIT_RUNTIME, "%s: input '%s' has rank %d, expected %d [batch, sequence%s]",
                   s->path, in_name, s->in[0].n_dims, n_dims, width ? ", width" : "");
  if (width && s->in[0].shape[2] >= 0 && s->in[0].shape[2] != width)
    return err_set(e, EXIT_RUNTIME, "%s: input '%s' has width %lld, expected %d", s->path, in_name,
                   (long long)s->in[0].shape[2], width);
  if (batch <= 0 || T <= 0 || width < 0 ||
      (size_t)batch > SIZE_MAX / elem_bytes / (size_t)T / (size_t)(width ? width : 1))
    return err_set(e, EXIT_USAGE, "%s: bad input shape [%d, %d]", s->path, batch, T);
  ort_value_in in = {in_name, elem, n_dims, {batch, T, width}, data};
  return ort_run(s, 1, &in, names, n_out, outs, e);
}

int ort_run_ids(ort_session *s, const int64_t *ids, int batch, int T, const char *const *names,
                int n_out, ort_value_out *outs, err *e) {
  return run_one_input(s, "input_ids", ORT_T_INT64, ids, batch, T, 0, names, n_out, outs, e);
}

int ort_run_hidden(ort_session *s, const float *x, int batch, int T, int D,
                   const char *const *names, int n_out, ort_value_out *outs, err *e) {
  if (D <= 0) return err_set(e, EXIT_USAGE, "%s: bad hidden width %d", s->path, D);
  return run_one_input(s, "hidden_in", ORT_T_FLOAT, x, batch, T, D, names, n_out, outs, e);
}
