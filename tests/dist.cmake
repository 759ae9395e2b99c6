# dist: the distributed forward pass (`mpirun -np P gptoss-mpi run`, mpi/dist*.c, mpi/cmd_run.c).
# Each test is one mode of tests/dist_test.py (see its docstring) with its own work directory,
# removed when the test passes.
#   dist_invariance_*   P = 1..4 x every valid split: traces bitwise = issue 3's engine
#                       (tests/dist_ref_trace.c), same ids without --trace          (mpi)
#                       (_long: a 256-token prompt, both kernel paths in one prefill)
#   dist_split_tiny     attention/head split with uneven ranges: bitwise, P = 1..4, 8   (mpi)
#   dist_split_20b      the same at 20b widths, 256 tokens (3.1 GB synth)           (mpi, slow)
#   dist_variants       bf16, --max-layers, default split, long generation            (mpi)
#   dist_fault          GPTOSS_FAULT in every phase, rank 0 and others               (mpi, fault)
#   dist_corrupt        a corrupt tensor only one rank reads                          (mpi, fault)
#   dist_files          missing / unreadable checkpoint files                         (mpi, fault)
#   dist_progress       progress lines from rank 0 only                               (mpi)
#   dist_touched        checkpoint bytes each rank touches vs the plan (2.5 GB synth) (mpi, slow)
# mpirun runs as root and oversubscribes the 2-core machines the tests run on.
add_executable(dist_ref_trace ${CMAKE_CURRENT_SOURCE_DIR}/dist_ref_trace.c)
target_link_libraries(dist_ref_trace PRIVATE parity model shards)

set(DIST_PY ${CMAKE_CURRENT_SOURCE_DIR}/dist_test.py)
set(DIST_WORK ${CMAKE_CURRENT_BINARY_DIR}/dist-work)
set(DIST_MPI_ENV "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1")

function(dist_test name labels timeout)
  add_test(NAME ${name} COMMAND ${PY3} ${DIST_PY} ${ARGN})
  set_tests_properties(${name} PROPERTIES LABELS "${labels}" TIMEOUT ${timeout}
    ENVIRONMENT "${DIST_MPI_ENV};GPTOSS_BIN=${GPTOSS_BIN};GOLDEN=${GOLDEN};DIST_WORK=${DIST_WORK}/${name};REF_TRACE=$<TARGET_FILE:dist_ref_trace>")
endfunction()

dist_test(dist_invariance_case_a "mpi;golden" 240 invariance case-a)
dist_test(dist_invariance_tiny_e6_l3 "mpi" 240 invariance tiny-e6-l3 --preset tiny --experts 6 --layers 3 --seed 21)
dist_test(dist_invariance_hf_e3_l4 "mpi" 240 invariance hf-e3-l4 --preset tiny --layout hf --experts 3 --layers 4 --seed 22)
dist_test(dist_invariance_long "mpi" 300 invariance tiny-long-e8-l3 --tokens 256 --preset tiny --experts 8 --layers 3 --seed 23)
dist_test(dist_split_tiny "mpi" 300 split)
dist_test(dist_split_20b "mpi;slow" 900 split-20b)
dist_test(dist_variants "mpi;golden" 240 variants)
dist_test(dist_fault "mpi;fault" 300 fault)
dist_test(dist_corrupt "mpi;fault" 180 corrupt)
dist_test(dist_files "mpi;fault" 120 files)
dist_test(dist_progress "mpi" 120 progress)
dist_test(dist_touched "mpi;slow" 600 touched)

# dist_agree itself: the verdict on every rank, and idempotence (no double "rank r: " prefix)
add_executable(test_dist_agree ${CMAKE_CURRENT_SOURCE_DIR}/test_dist_agree.c)
target_link_libraries(test_dist_agree PRIVATE dist)
add_test(NAME test_dist_agree COMMAND mpirun -np 3 $<TARGET_FILE:test_dist_agree>)
set_tests_properties(test_dist_agree PROPERTIES LABELS "mpi" TIMEOUT 60 ENVIRONMENT "${DIST_MPI_ENV}")
