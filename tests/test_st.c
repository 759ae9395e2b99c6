/* st: valid files written here (every dtype, zero-size and scalar tensors, metadata, padding),
 * lookups, in-memory header parsing and the bf16 helpers. Invalid files: test_corrupt.c. */
#include <stdlib.h>
#include <string.h>

#include "st.h"
#include "stwrite.h"
#include "testutil.h"

static void test_dtypes(const char *dir) {
  static const char *names[ST_N_DTYPES] = {"BOOL", "U8",  "I8",  "F8_E4M3", "F8_E5M2",
                                           "U16",  "I16", "F16", "BF16",    "U32",
                                           "I32",  "F32", "U64", "I64",     "F64"};
  static const size_t sizes[ST_N_DTYPES] = {1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8};
  tw_tensor t[ST_N_DTYPES + 4];
  uint8_t bytes[ST_N_DTYPES][48];
  char tname[ST_N_DTYPES][32];
  for (int i = 0; i < ST_N_DTYPES; i++) {
    TU_CHECK(st_dtype_parse(names[i]) == i, "parse %s", names[i]);
    TU_CHECK(strcmp(st_dtype_name((st_dtype)i), names[i]) == 0, "name %d", i);
    TU_CHECK(st_dtype_size((st_dtype)i) == sizes[i], "size %s", names[i]);
    for (int b = 0; b < 48; b++) bytes[i][b] = (uint8_t)(i * 31 + b);
    snprintf(tname[i], sizeof tname[i], "t.%s", names[i]);
    t[i] = (tw_tensor){tname[i], names[i], 2, {2, 3}, bytes[i], 6 * sizes[i]};
  }
  TU_CHECK(st_dtype_parse("bf16") == -1 && st_dtype_parse("") == -1 && st_dtype_parse("Q4") == -1,
           "unknown dtype names");
  static const uint8_t one[2] = {0x80, 0x3f};
  t[ST_N_DTYPES + 0] = (tw_tensor){"zero.a", "F32", 1, {0}, NULL, 0};
  t[ST_N_DTYPES + 1] = (tw_tensor){"zero.b", "BF16", 3, {4, 0, 5}, NULL, 0};
  t[ST_N_DTYPES + 2] = (tw_tensor){"scalar", "BF16", 0, {0}, one, 2};
  t[ST_N_DTYPES + 3] = (tw_tensor){"zero.c", "U8", 2, {0, 0}, NULL, 0};
  char path[512];
  snprintf(path, sizeof path, "%s/all.safetensors", dir);
  TU_CHECK(tw_write(path, t, ST_N_DTYPES + 4, "{\"format\":\"pt\",\"note\":\"x\"}", 13) == 0,
           "write %s", path);
  st_file *f = NULL;
  err e = {0};
  int rc = st_file_open(path, &f, &e);
  TU_CHECK(rc == 0, "open: %s", e.msg);
  if (rc) return;
  TU_CHECK(st_file_n_tensors(f) == ST_N_DTYPES + 4, "n tensors %zu", st_file_n_tensors(f));
  TU_CHECK(strcmp(st_file_path(f), path) == 0, "path");
  size_t n_hdr = 0;
  uint8_t *raw = tu_read_file(path, &n_hdr);
  TU_CHECK(raw && st_file_size(f) == n_hdr, "file size");
  uint64_t hl = 0;
  for (int i = 7; raw && i >= 0; i--) hl = (hl << 8) | raw[i];
  TU_CHECK(st_file_data_start(f) == 8 + hl, "data start %llu", (unsigned long long)st_file_data_start(f));
  TU_CHECK(hl % 8 == 5, "padding kept (header %llu bytes)", (unsigned long long)hl);
  uint64_t expect_off = 8 + hl;
  for (int i = 0; i < ST_N_DTYPES; i++) {
    const st_tensor *s = st_file_tensor(f, (size_t)i);
    TU_CHECK(s && strcmp(s->name, tname[i]) == 0, "header order %d", i);
    TU_CHECK(s == st_file_find(f, tname[i]), "find %s", tname[i]);
    TU_CHECK(s->dtype == (st_dtype)i && s->n_dims == 2 && s->shape[0] == 2 && s->shape[1] == 3,
             "%s dtype/shape", tname[i]);
    TU_CHECK(s->n_elems == 6 && s->n_bytes == 6 * sizes[i], "%s sizes", tname[i]);
    TU_CHECK(s->file_offset == expect_off, "%s offset %llu", tname[i],
             (unsigned long long)s->file_offset);
    TU_CHECK(s->data && memcmp(s->data, bytes[i], s->n_bytes) == 0, "%s data", tname[i]);
    expect_off += s->n_bytes;
  }
  const st_tensor *z = st_file_find(f, "zero.b");
  TU_CHECK(z && z->n_elems == 0 && z->n_bytes == 0 && z->n_dims == 3 && z->shape[2] == 5, "zero.b");
  const st_tensor *sc = st_file_find(f, "scalar");
  TU_CHECK(sc && sc->n_dims == 0 && sc->n_elems == 1 && sc->n_bytes == 2, "scalar");
  TU_CHECK(sc && st_bf16_to_f32((uint16_t)(((const uint8_t *)sc->data)[0] |
                                           ((const uint8_t *)sc->data)[1] << 8)) == 1.0f,
           "scalar value");
  TU_CHECK(st_file_find(f, "nope") == NULL && st_file_find(f, "") == NULL, "find absent");
  TU_CHECK(st_file_tensor(f, 1000) == NULL, "index out of range");
  st_file_close(f);

  /* The same header parsed from memory: same catalog, no data pointers. */
  rc = st_header_parse(path, raw + 8, (size_t)hl, n_hdr, &f, &e);
  TU_CHECK(rc == 0, "header parse: %s", e.msg);
  if (rc == 0) {
    TU_CHECK(st_file_n_tensors(f) == ST_N_DTYPES + 4, "parse count");
    TU_CHECK(st_file_tensor(f, 0)->data == NULL, "no data pointers without a mapping");
    st_file_close(f);
  }
  /* Claiming a smaller file makes the last tensor run past the end. */
  err_clear(&e);
  TU_CHECK(st_header_parse(path, raw + 8, (size_t)hl, n_hdr - 1, &f, &e) == -1 &&
           strstr(e.msg, "runs past the end of the data section"), "short file: %s", e.msg);
  free(raw);
}

static void test_empty_data(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/empty.safetensors", dir);
  tw_tensor t[1] = {{"nothing", "F16", 2, {3, 0}, NULL, 0}};
  TU_CHECK(tw_write(path, t, 1, NULL, 0) == 0, "write");
  st_file *f = NULL;
  err e = {0};
  TU_CHECK(st_file_open(path, &f, &e) == 0, "open zero-length data section: %s", e.msg);
  if (f) {
    TU_CHECK(st_file_size(f) == st_file_data_start(f), "no data bytes");
    st_file_close(f);
  }
  /* An empty header object is a valid file with no tensors. */
  snprintf(path, sizeof path, "%s/none.safetensors", dir);
  TU_CHECK(tw_write_raw(path, 8, "{}      ", 8, NULL, 0) == 0, "write");
  err_clear(&e);
  TU_CHECK(st_file_open(path, &f, &e) == 0, "open empty header: %s", e.msg);
  if (f) {
    TU_CHECK(st_file_n_tensors(f) == 0, "no tensors");
    st_file_close(f);
  }
}

static void test_header_strings(void) {
  static const struct { const char *h; const char *frag; } bad[] = {
      {"{} x", "non-space bytes after"},
      {"[]", "expected a JSON object"},
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"extra\":1}}", "unknown field 'extra'"},
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", "missing field 'data_offsets'"},
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":[9007199254740993],\"data_offsets\":[0,1]}}", "shape entry 0"},
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1e300],\"data_offsets\":[0,1]}}", "shape entry 0"},
      {"{\"a\":{\"dtype\":\"U64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,1]}}", "overflows"},
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", "9 dimensions"},
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", "data_offsets"},
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1.5]}}", "data_offsets"},
      {"{\"__metadata__\":{\"k\":1}}", "__metadata__ entry 'k'"},
      {"{\"__metadata__\":[]}", "__metadata__ is an array"},
      {"{\"a\\n\":{\"dtype\":\"X\",\"shape\":[1],\"data_offsets\":[0,1]}}", "tensor 'a\\x0a'"},
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
       "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]},"
       "\"c\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[2,2]},"
       "\"d\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[2,3]}}", "overlaps tensor 'b'"},
      {"", "not valid JSON"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    st_file *f = NULL;
    err e = {0};
    size_t n = strlen(bad[i].h);
    int rc = st_header_parse("mem.safetensors", (const uint8_t *)bad[i].h, n, 8 + n + 100, &f, &e);
    TU_CHECK(rc == -1 && f == NULL && e.code == 1 && strstr(e.msg, bad[i].frag) &&
             strstr(e.msg, "mem.safetensors") && !strchr(e.msg, '\n'),
             "case %zu: want '%s', got '%s'", i, bad[i].frag, e.msg);
  }
  /* A zero-size tensor inside another's range and touching ranges are fine. */
  const char *ok = "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                   "\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[1,1]},"
                   "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}  \n";
  st_file *f = NULL;
  err e = {0};
  TU_CHECK(st_header_parse("mem", (const uint8_t *)ok, strlen(ok), 8 + strlen(ok) + 4, &f, &e) == 0,
           "touching ranges: %s", e.msg);
  st_file_close(f);
  /* Length limits checked before anything is read. */
  err_clear(&e);
  TU_CHECK(st_header_parse("mem", (const uint8_t *)ok, strlen(ok), strlen(ok), &f, &e) == -1 &&
           strstr(e.msg, "past the end of the file"), "header longer than file: %s", e.msg);
}

static void test_bf16(void) {
  TU_CHECK(st_bf16_to_f32(0x3f80) == 1.0f && st_bf16_to_f32(0xc000) == -2.0f, "bf16 -> f32");
  TU_CHECK(st_f32_to_bf16(1.0f) == 0x3f80, "exact");
  union { uint32_t u; float f; } v;
  v.u = 0x3f808000u;   /* halfway between 0x3f80 and 0x3f81: ties to even (0x3f80) */
  TU_CHECK(st_f32_to_bf16(v.f) == 0x3f80, "tie to even down");
  v.u = 0x3f818000u;   /* halfway, odd lower neighbour: up to 0x3f82 */
  TU_CHECK(st_f32_to_bf16(v.f) == 0x3f82, "tie to even up");
  v.u = 0x3f808001u;
  TU_CHECK(st_f32_to_bf16(v.f) == 0x3f81, "above half rounds up");
  v.u = 0x7fc00001u;
  uint16_t nan = st_f32_to_bf16(v.f);
  TU_CHECK((nan & 0x7f80) == 0x7f80 && (nan & 0x7f), "NaN stays NaN");
}

int main(void) {
  char *dir = tu_mkdtemp("test_st");
  TU_CHECK(dir != NULL, "mkdtemp");
  if (dir) {
    test_dtypes(dir);
    test_empty_data(dir);
    tu_rm_rf(dir);
    free(dir);
  }
  test_header_strings();
  test_bf16();
  return tu_finish("test_st");
}
