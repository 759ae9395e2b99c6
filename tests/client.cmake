# A real client (issue 11): transformers.js 4.3.2 (`scripts/setup.sh --test` installs it under
# .deps/tjs, offline-capable; FAILS, not skips, when it is absent) loads export directories as
# they are and greedy-generates; ids must equal `gptoss-mpi run` (case-a, synth shapes, a
# left-padded batch).                                                        (mpi, golden, client)
set(GPTOSS_TJS_DIR "${PROJECT_SOURCE_DIR}/.deps/tjs" CACHE PATH
    "prefix where scripts/setup.sh --test installed @huggingface/transformers")
add_test(NAME client_tjs COMMAND ${PY3} ${CMAKE_CURRENT_SOURCE_DIR}/client_test.py ${GPTOSS_BIN}
         ${GPTOSS_TJS_DIR} ${CMAKE_CURRENT_BINARY_DIR}/client-tjs-work)
set_tests_properties(client_tjs PROPERTIES LABELS "export;client;mpi;golden" TIMEOUT 600
  ENVIRONMENT "GOLDEN=${GOLDEN}")
# The same client on `export --target ort` (issue 13): GroupQueryAttention and QMoE in the
# transformers.js session, ids equal to `gptoss-mpi run`, the left-padded batches included.
add_test(NAME client_tjs_ort COMMAND ${PY3} ${CMAKE_CURRENT_SOURCE_DIR}/client_test.py ${GPTOSS_BIN}
         ${GPTOSS_TJS_DIR} ${CMAKE_CURRENT_BINARY_DIR}/client-tjs-ort-work ort)
set_tests_properties(client_tjs_ort PROPERTIES LABELS "export;client;mpi;golden" TIMEOUT 600
  ENVIRONMENT "GOLDEN=${GOLDEN}")
