/* export_write: the files of an exported model in its directory (docs/export.md "Files"): the
 * graph (onnx/model.onnx), its data file(s) beside it, and for a decoder the client files
 * (export_client.h). `gptoss-mpi export` (mpi/cmd_export.c, which only sequences and agrees)
 * stages the output directory with export_dir_stage, has every rank write its share with
 * export_write_share, rank 0 the graph with export_graph_write and the client files, and
 * publishes the directory (shards/atomic.h); `parity --per-stage` has each stage leader write
 * its stage's sub-model alone with export_write_local. Local (no MPI). */
#ifndef GPTOSS_EXPORT_WRITE_H
#define GPTOSS_EXPORT_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "atomic.h"
#include "ckpt.h"
#include "err.h"
#include "export_layout.h"

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
/* Stage the output directory next to `output` (shards/atomic.h; pid: the pid in the staged name,
 * rank 0's, 0 = this process's) and, with a single data file, create that file at its full size
 * so that every rank can open it and write its ranges. Caller owns *out (publish or abort). */
int export_dir_stage(const export_layout *L, const char *output, long pid, atomic_out **out,
                     err *e);
/* The share of the data that `rank` writes under plan p, into the staged directory dir: the data
 * file opened (per-rank files: created and sized), every tensor range export_layout_share gives
 * the rank written, then fsync and close. fn(ctx, bytes) after every chunk with this rank's
 * running byte count (may be NULL). */
int export_write_share(const ckpt *ck, const export_layout *L, const plan *p, int rank,
                       const char *dir, export_progress_fn fn, void *ctx, err *e);

#endif
