/* testutil: tiny assertion and file helpers for the ctest binaries. A failed check prints
 * file:line and the message and makes the binary exit 1 at the end (tu_finish). */
#ifndef GPTOSS_TESTUTIL_H
#define GPTOSS_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int tu_failures;
extern int tu_checks;

#define TU_CHECK(cond, ...)                                              \
  do {                                                                   \
    tu_checks++;                                                         \
    if (!(cond)) {                                                       \
      tu_failures++;                                                     \
      fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
      fprintf(stderr, __VA_ARGS__);                                      \
      fputc('\n', stderr);                                               \
    }                                                                    \
  } while (0)

/* Print "N passed, M failed" and return the exit status. */
int tu_finish(const char *name);
/* A fresh directory under $TMPDIR_BASE (or /tmp); caller frees the string. */
char *tu_mkdtemp(const char *tag);
/* Remove a directory tree (best effort). */
void tu_rm_rf(const char *path);
/* Write / read whole files. tu_read_file returns malloc'd data (NUL-terminated) or NULL. */
int tu_write_file(const char *path, const void *data, size_t n);
void *tu_read_file(const char *path, size_t *n);
/* $GOLDEN (the case-a directory) or the source-tree default. */
const char *tu_golden_dir(void);

#endif
