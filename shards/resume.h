/* resume: the unfinished state of a resumable output directory (docs/export.md "Resuming an
 * export"). An export writes into OUT.partial (a sibling of OUT) and renames it to OUT only when
 * it is complete, so OUT never exists half-written; OUT.partial holds, besides the output's own
 * files:
 *
 *   manifest         text, written once when OUT.partial is made (it appears with it: the
 *                    directory is staged under a hidden name, the manifest synced in it, then
 *                    renamed): the identity of the job (checkpoint files with size and mtime,
 *                    every option that changes bytes, tool version) and the layout of the data
 *                    (file, offset, length of every tensor). A resume whose manifest text differs
 *                    in any line is refused: work of two different jobs never mixes.
 *   journal.<rank>   one line per finished piece of data, appended by the rank that wrote it only
 *                    after the data was fdatasync'ed, and fdatasync'ed itself:
 *                      NAME FILE OFFSET LENGTH XXH64 CHECK
 *                    (decimal FILE OFFSET LENGTH, 16 hex digits for XXH64 of the piece's bytes
 *                    and CHECK = XXH64 of the line up to it, seed RESUME_LINE_SEED). A line whose
 *                    CHECK does not match (torn by a kill, or damaged) is ignored. Records name
 *                    pieces by tensor, file and offset, not by rank: any rank count can resume.
 *   lock             flock()ed by the job that works in the directory (its host and pid inside),
 *                    so that two jobs never write the same OUT.partial.
 *
 * Publishing removes the journals, the manifest and the lock, then renames OUT.partial to OUT and
 * fsyncs the parent. Readers of finished outputs refuse a directory with a manifest
 * (resume_refuse_partial). Local (no MPI): rank 0 owns the directory (resume_dir_*), every rank
 * its journal (resume_journal_*). */
#ifndef GPTOSS_RESUME_H
#define GPTOSS_RESUME_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define RESUME_MANIFEST_MAGIC "gptoss-mpi resumable export manifest 1"
#define RESUME_LINE_SEED 0x6a6f75726e616cull

typedef struct resume_dir resume_dir;

/* target with trailing slashes removed + ".partial" into buf. */
int resume_partial_path(const char *target, char *buf, size_t len, err *e);

/* Open (resume) or create the unfinished directory of `target` and lock it. manifest: the
 * identity text of this job (first line RESUME_MANIFEST_MAGIC). With no OUT.partial it is made
 * with this manifest (resume or not). An existing OUT.partial is refused without `resume` (the
 * message says to pass --resume or remove it), refused when it is locked by another job (the
 * message names the holder), when it is not a directory, or when its manifest differs from
 * `manifest` (the message quotes the first differing line). Caller owns *out. */
int resume_dir_open(const char *target, const char *manifest, int resume, resume_dir **out,
                    err *e);
const char *resume_dir_path(const resume_dir *d);
/* 1 when this call made the directory (nothing to resume). */
int resume_dir_created(const resume_dir *d);
/* Remove the bookkeeping (journals, manifest, lock), rename OUT.partial to the target (which
 * must not exist, or be an empty directory), fsync the parent. Frees d in every case; on failure
 * OUT.partial is left for another resume. */
int resume_dir_publish(resume_dir *d, err *e);
/* Unlock and free d; remove_tree: also remove OUT.partial and everything in it. NULL is fine. */
void resume_dir_close(resume_dir *d, int remove_tree);

typedef struct {
  char name[96];
  int file;
  uint64_t offset, length, hash;
} resume_record;

typedef struct {
  resume_record *r;
  size_t n;
  size_t n_ignored; /* lines that failed their check (torn or damaged) */
} resume_records;

/* Every valid record of every dir/journal.* file. Caller frees (resume_records_free). */
int resume_records_read(const char *dir, resume_records *out, err *e);
/* The record of the piece (file, offset, length) named `name`, or NULL (none, or records that
 * disagree about its hash). */
const resume_record *resume_records_find(const resume_records *rs, const char *name, int file,
                                         uint64_t offset, uint64_t length);
void resume_records_free(resume_records *rs);

typedef struct {
  int fd;
  char path[PATH_MAX];
} resume_journal;

/* Open dir/journal.<rank> for appending (created if missing; a torn last line cut off). */
int resume_journal_open(const char *dir, int rank, resume_journal *j, err *e);
/* Append n records, one line each, then fdatasync the journal. */
int resume_journal_append(resume_journal *j, const resume_record *r, size_t n, err *e);
void resume_journal_close(resume_journal *j);

/* -1 with a clear error when path (a directory, or a file in it or in its onnx/ subdirectory)
 * is inside an unfinished export (a directory holding a resumable manifest); 0 otherwise. */
int resume_refuse_partial(const char *path, err *e);

#endif
