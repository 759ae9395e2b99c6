/* test_dist_agree (mpirun -np 3): dist_agree's verdict on every rank, and calling it again on an
 * agreed error keeps the message as it is (the "rank r: " prefix is added once). */
#include <stdio.h>
#include <string.h>

#include "dist.h"

int main(int argc, char **argv) {
  dist d;
  if (dist_init(&argc, &argv, &d) != 0) {
    dist_finalize(&d);
    return 1;
  }
  int ok = d.size == 3;
  err e = {0};
  ok &= dist_agree(&d, &e) == 0 && e.code == 0;                 /* nobody failed */
  if (d.rank == 1) err_set(&e, EXIT_USAGE, "boom");
  if (d.rank == 2) err_set(&e, EXIT_RUNTIME, "later rank");
  ok &= dist_agree(&d, &e) == -1;                               /* the lowest failing rank wins */
  ok &= !strcmp(e.msg, "rank 1: boom") && e.code == EXIT_USAGE && e.agreed;
  char first[sizeof e.msg];
  memcpy(first, e.msg, sizeof first);
  ok &= dist_agree(&d, &e) == -1 && !strcmp(e.msg, first);      /* again: no second prefix */
  ok &= dist_agree(&d, &e) == -1 && !strcmp(e.msg, first) && e.code == EXIT_USAGE;
  int all = 0;
  MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, d.world);
  if (d.rank == 0) printf("test_dist_agree: %s (message after three agreements: '%s')\n",
                          all ? "PASS" : "FAIL", e.msg);
  dist_finalize(&d);
  return all ? 0 : 1;
}
