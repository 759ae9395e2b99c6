# export --resume (issue 15 item 3, tests/resume_test.py; docs/export.md "Resuming an export"):
#   xxh64          shards/xxh64.c (one-shot and streamed) vs xxhsum -H64 and python3-xxhash   (unit)
#   export_resume  SIGTERM mid-export -> --resume at another rank count, refusals (no --resume,
#                  other options, locked, parity on the .partial), a corrupted piece and a torn
#                  journal line (only they are rewritten), per-rank files; byte-identical to an
#                  uninterrupted export; ~20 s                                  (export, mpi, fault)
add_executable(xxh64_tool ${CMAKE_CURRENT_SOURCE_DIR}/xxh64_tool.c)
target_link_libraries(xxh64_tool PRIVATE shards)
add_test(NAME xxh64
         COMMAND ${PY3} ${CMAKE_CURRENT_SOURCE_DIR}/resume_test.py xxh64 $<TARGET_FILE:xxh64_tool>
                 ${CMAKE_CURRENT_BINARY_DIR}/xxh64-work)
set_tests_properties(xxh64 PROPERTIES LABELS "unit" TIMEOUT 120)
add_test(NAME export_resume
         COMMAND ${PY3} ${CMAKE_CURRENT_SOURCE_DIR}/resume_test.py export ${GPTOSS_BIN}
                 ${CMAKE_CURRENT_BINARY_DIR}/export-resume-work)
set_tests_properties(export_resume PROPERTIES LABELS "export;mpi;fault" TIMEOUT 300
  ENVIRONMENT "GOLDEN=${GOLDEN}")
