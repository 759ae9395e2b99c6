# Progress lines of long phases (tests/progress_test.py): the job's figures reduced over the
# ranks, --progress 0 off, -q silent.
add_test(NAME progress_lines COMMAND ${PY3} ${CMAKE_CURRENT_SOURCE_DIR}/progress_test.py ${GPTOSS_BIN}
         ${CMAKE_CURRENT_BINARY_DIR}/progress-work)
set_tests_properties(progress_lines PROPERTIES LABELS "mpi;export" TIMEOUT 300 ENVIRONMENT "GOLDEN=${GOLDEN}")
