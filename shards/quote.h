/* quote: untrusted text (names and JSON values from checkpoint files) made safe for one-line
 * error messages. Pure functions. */
#ifndef GPTOSS_QUOTE_H
#define GPTOSS_QUOTE_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* s with control bytes and backslashes escaped (\xNN), cut after ~100 bytes ("..."); written
 * to buf (len >= 16), which is returned. */
const char *quote_name(const char *s, char *buf, size_t len);
/* Scan JSON text for strings that cJSON would silently cut short: a \u0000 escape (cJSON
 * decodes it to a NUL that ends the C string, so "norm.scale\u0000x" would read as
 * "norm.scale") or a raw control byte inside a string (invalid JSON, tolerated by cJSON). 0 if
 * there is none; else 1 for \u0000 or 2 for a raw control byte, with *at = its byte offset. */
int quote_json_scan(const char *text, size_t len, size_t *at);
/* "a number", "a string", "a boolean", "null", "an array", "an object" (for "X is ..."). */
const char *quote_json_kind(const cJSON *v);

#endif
