/* quote: untrusted text (names and JSON values from checkpoint files) made safe for one-line
 * error messages. Pure functions. */
#ifndef GPTOSS_QUOTE_H
#define GPTOSS_QUOTE_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* s with control bytes and backslashes escaped (\xNN), cut after ~100 bytes ("..."); written
 * to buf (len >= 16), which is returned. */
const char *quote_name(const char *s, char *buf, size_t len);
/* "a number", "a string", "a boolean", "null", "an array", "an object" (for "X is ..."). */
const char *quote_json_kind(const cJSON *v);

#endif
