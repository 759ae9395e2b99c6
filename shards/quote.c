#include "quote.h"

#include <stdio.h>
#include <string.h>

const char *quote_name(const char *s, char *buf, size_t len) {
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p && o + 8 < len; p++) {
    if (o > 100) {
      memcpy(buf + o, "...", 3);
      o += 3;
      break;
    }
    if (*p < 0x20 || *p == 0x7f || *p == '\\')
      o += (size_t)snprintf(buf + o, len - o, "\\x%02x", *p);
    else
      buf[o++] = (char)*p;
  }
  buf[o] = '\0';
  return buf;
}

const char *quote_json_kind(const cJSON *v) {
  if (cJSON_IsNumber(v)) return "a number";
  if (cJSON_IsString(v)) return "a string";
  if (cJSON_IsBool(v)) return "a boolean";
  if (cJSON_IsNull(v)) return "null";
  if (cJSON_IsArray(v)) return "an array";
  if (cJSON_IsObject(v)) return "an object";
  return "invalid";
}

int quote_json_scan(const char *text, size_t len, size_t *at) {
  int in_str = 0;
  for (size_t i = 0; i < len; i++) {
    const unsigned char c = (unsigned char)text[i];
    if (!in_str) {
      if (c == '"') in_str = 1;
      continue;
    }
    if (c == '"') {
      in_str = 0;
    } else if (c < 0x20) {
      *at = i;
      return 2;
    } else if (c == '\\' && i + 1 < len) {
      if (text[i + 1] == 'u' && i + 5 < len && !memcmp(text + i + 2, "0000", 4)) {
        *at = i;
        return 1;
      }
      i++; /* the escaped character (a quote or a backslash) does not end or start anything */
    }
  }
  return 0;
}
