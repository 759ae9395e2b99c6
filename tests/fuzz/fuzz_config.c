/* libFuzzer target: config.json parsing in both layouts (config_parse). The first byte picks
 * the layout (bit 0); the rest is the JSON text. */
#include <stddef.h>
#include <stdint.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const ckpt_layout layout = (data[0] & 1) ? LAYOUT_HF : LAYOUT_ORIGINAL;
  gpt_config c;
  char defaulted[256];
  err e = {0};
  if (config_parse("fuzz/config.json", (const char *)data + 1, size - 1, layout, &c, defaulted,
                   sizeof defaulted, &e) == 0) {
    /* An accepted config must satisfy its own constraints. */
    err e2 = {0};
    if (config_validate(&c, "fuzz", &e2) != 0) __builtin_trap();
    config_yarn y;
    config_yarn_params(&c, &y);
  } else if (e.code != 1 || e.msg[0] == '\0') {
    __builtin_trap();
  }
  return 0;
}
