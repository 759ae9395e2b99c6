/* A stand-in for an old ONNX Runtime, for test_ort: exports OrtGetApiBase like the real
 * library, reports the version in $FAKE_ORT_VERSION (default "1.16.3") and serves no C API
 * version above 16, as ONNX Runtime 1.16 would. Built as a MODULE, loaded only by dlopen. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
  const void *(*GetApi)(uint32_t version);
  const char *(*GetVersionString)(void);
} fake_api_base;

static const void *(*const fake_table[1])(void) = {NULL};

static const void *fake_get_api(uint32_t version) {
  return version >= 1 && version <= 16 ? (const void *)fake_table : NULL;
}

static const char *fake_version(void) {
  const char *v = getenv("FAKE_ORT_VERSION");
  return v && *v ? v : "1.16.3";
}

const fake_api_base *OrtGetApiBase(void);
const fake_api_base *OrtGetApiBase(void) {
  static const fake_api_base base = {fake_get_api, fake_version};
  return &base;
}
