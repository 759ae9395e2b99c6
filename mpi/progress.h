/* progress: one progress line every N seconds on long work, from rank 0 (STYLE.md "Output, logs,
 * progress"): what is done of the job, the rate and the time left, e.g.
 *   data: 1.2 of 4.2 GiB (29 %, 4 ranks), 812.0 MiB/s, 4 s left
 *   prefill: 12 of 24 layers (50 %), 2.1 layers/s, 6 s left
 * The figures are the JOB's: with `reduce`, every rank reports its own count to rank 0 (a small
 * non-blocking message at most every half interval, never waiting for rank 0), and rank 0 sums
 * them; without it the caller's count already is the job's (e.g. the forward pass, whose ranks
 * agree after every layer) or the process is alone (d NULL). every_s <= 0 (--progress 0) turns
 * the lines off. With reduce, progress_begin and progress_end are COLLECTIVE over the world;
 * otherwise everything is local. */
#ifndef GPTOSS_PROGRESS_H
#define GPTOSS_PROGRESS_H

#include <stdint.h>

#include "dist.h"

typedef struct {
  const char *label;        /* "data", "prefill", "synth" */
  const char *unit;         /* NULL: bytes (printed in MiB/GiB); else the unit's name ("layers") */
  uint64_t total, own;      /* the job's total; this rank's count */
  double every, t0, last_print, last_send;
  dist *d;                  /* NULL: one process */
  int reduce;
  MPI_Comm comm;            /* private duplicate of the world (reduce only) */
  MPI_Request req;
  uint64_t msg[2];          /* {count, final} being sent */
  uint64_t *counts;         /* rank 0: [size] latest count of every rank */
  uint8_t *final;           /* rank 0: [size] its last message has arrived */
} progress;

/* Start. label and unit are borrowed (string literals). */
void progress_begin(progress *p, dist *d, int reduce, const char *label, const char *unit,
                    uint64_t total, double every_s);
/* This rank has done `done` units of its share so far. Local. */
void progress_note(progress *p, uint64_t done);
/* Collect the final counts (reduce: COLLECTIVE, on every path, failed or not); returns the
 * job's count (rank 0; other ranks their own). No line is printed. */
uint64_t progress_end(progress *p);

#endif
