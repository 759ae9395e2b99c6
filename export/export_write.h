/* export_write: the files of an exported model in its directory (docs/export.md "Files"): the
 * graph (onnx/model.onnx), its data file(s) beside it, and for a decoder the client files
 * (export_client.h). `gptoss-mpi export` writes the data in parallel (mpi/cmd_export.c) and the
 * graph with export_graph_write; `parity --per-stage` has each stage leader write its stage's
 * sub-model alone with export_write_local.
 * Local (no MPI). */
#ifndef GPTOSS_EXPORT_WRITE_H
#define GPTOSS_EXPORT_WRITE_H

#include <stddef.h>
#include <stdint.h>

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
/* Remove what an export writes into dir (the graph, L's data files (L NULL: none), the client
 * files, onnx/), then dir itself. Errors are ignored (cleanup after a failure). */
void export_dir_remove(const char *dir, const export_layout *L);

#endif
