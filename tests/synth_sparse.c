/* synth_sparse OUT_DIR PRESET LAYOUT [LAYERS]: a checkpoint of full real shape whose data
 * sections are holes (synth_opts.sparse): real safetensors headers and file sizes, no disk
 * used, so `inspect` can be checked against spec section 3 without writing 13 or 65 GB. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synth.h"

int main(int argc, char **argv) {
  if (argc < 4 || argc > 5) {
    fprintf(stderr, "usage: synth_sparse OUT_DIR tiny|20b|120b original|hf [LAYERS]\n");
    return 2;
  }
  synth_opts o;
  synth_opts_init(&o);
  if (synth_preset_parse(argv[2], &o.preset) != 0) { fprintf(stderr, "bad preset\n"); return 2; }
  o.layout = !strcmp(argv[3], "hf") ? LAYOUT_HF : LAYOUT_ORIGINAL;
  if (argc == 5) o.n_layers = atoi(argv[4]);
  o.sparse = 1;
  err e = {0};
  if (synth_write(argv[1], &o, &e) != 0) {
    fprintf(stderr, "synth_sparse: %s\n", e.msg);
    return 1;
  }
  return 0;
}
