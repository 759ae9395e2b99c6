/* export_write: the files of an exported model in its directory (docs/export.md "Files"): the
 * graph (onnx/model.onnx), its data file(s) beside it, and for a decoder the client files
 * (export_client.h). `gptoss-mpi export` (mpi/cmd_export.c, which only sequences and agrees)
 * makes the unfinished directory OUT.partial (shards/resume.h) and prepares it with
 * export_dir_prepare, has every rank write its share with export_write_share (journaled, so
 * that a stopped export resumes), rank 0 the graph with export_graph_write and the client
 * files, and publishes the directory (resume_dir_publish); `parity --per-stage` has each stage leader write
 * its stage's sub-model alone with export_write_local. Local (no MPI). */
#ifndef GPTOSS_EXPORT_WRITE_H
#define GPTOSS_EXPORT_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "atomic.h"
#include "ckpt.h"
#include "err.h"
#include "export_layout.h"
#include "resume.h"

/* Create dir/onnx (dir must exist): the model's own directory. */
int export_dir_init(const char *dir, err *e);
/* Build L's graph and write it to dir/onnx/model.onnx (created, must not exist), fsynced with
 * its directory. n_bytes, n_nodes: the file size and node count (either may be NULL). */
int export_graph_write(const export_layout *L, const char *dir, uint64_t *n_bytes,
                       size_t *n_nodes, err *e);
/* Write the whole model of layout L (single data file mode) into the existing directory dir:
 * the data file (every tensor, checked as the parallel export checks it), then the graph. No
 * client files. Meant for temporary models that are read back at once. */
int export_write_local(const ckpt *ck, const export_layout *L, const char *dir, err *e);
/* Prepare the unfinished output directory dir (OUT.partial, shards/resume.h; rank 0, before
 * any rank writes): dir/onnx made if missing, what a stopped run may have left besides the data
 * removed (the graph, hidden temporary files), and with a single data file that file created at
 * its full size (or resized to it) so that every rank can open it and write its ranges. */
int export_dir_prepare(const export_layout *L, const char *dir, err *e);

/* Resuming (docs/export.md "Resuming an export"): the journal of this rank and what the
 * journals say is already written. The data is journaled in pieces: a whole tensor, or one
 * expert's slice of an expert tensor split by the ranks of a stage (single data file). */
typedef struct {
  const resume_records *done;  /* journaled pieces, each verified before it is skipped (or NULL) */
  resume_journal *journal;     /* every piece written is recorded here (or NULL) */
  long throttle_ms;            /* test hook (GPTOSS_EXPORT_THROTTLE): sleep after each write */
  uint64_t n_verified, verified_bytes; /* out: pieces skipped because their bytes verified */
  uint64_t n_written, written_bytes;   /* out: pieces written */
  uint64_t n_mismatch;                 /* out: journaled pieces whose bytes did not match */
} export_resume;

/* The share of the data that `rank` writes under plan p, into the directory dir (prepared by
 * export_dir_prepare): the data file opened (per-rank files: created and sized), every tensor
 * range export_layout_share gives the rank written, then fsync and close. With res: a journaled
 * piece whose bytes hash to its record is skipped, the others are written, fdatasync'ed, read
 * back, hashed and journaled. fn(ctx, bytes) after every chunk with this rank's running byte
 * count (may be NULL). */
int export_write_share(const ckpt *ck, const export_layout *L, const plan *p, int rank,
                       const char *dir, export_progress_fn fn, void *ctx, export_resume *res,
                       err *e);

#endif
