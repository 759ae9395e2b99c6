# ort: ONNX Runtime through dlopen and our own C API declaration (parity/ort.c).
#   test_ort  tiny models built at test time (ort_models.py, Debian's python3-onnx) run through
#             ort_run_ids vs values computed in C (exact); io description; version 1.30.0 of
#             the library `make setup` installs (FAILS, not skips, when it is absent); missing,
#             non-ORT and too-old libraries (ort_fake_lib, a stand-in for ORT 1.16); garbage
#             and absent models; options observed (optimized-model dump, thread count). (unit, ort)
# Sanitizer build: ONNX Runtime leaks 14 bytes inside CreateEnv; tests/lsan.supp suppresses it,
# and tests/CMakeLists.txt gives that file to every test (one place).
add_library(ort_fake_lib MODULE ${CMAKE_CURRENT_SOURCE_DIR}/ort_fake_lib.c)
add_executable(test_ort ${CMAKE_CURRENT_SOURCE_DIR}/test_ort.c)
target_link_libraries(test_ort PRIVATE testutil parity)
add_dependencies(test_ort ort_fake_lib)
add_test(NAME test_ort COMMAND test_ort ${CMAKE_CURRENT_SOURCE_DIR}/ort_models.py
                                        $<TARGET_FILE:ort_fake_lib>)
set_tests_properties(test_ort PROPERTIES LABELS "unit;ort" TIMEOUT 300
  ENVIRONMENT "TMPDIR_BASE=${CMAKE_CURRENT_BINARY_DIR}")
# The pieces of issue 11 in one process so that the sanitizer build covers them: case-a exported
# as a decoder + client files; ort_trace_run driving a tiny decoder of exact values (ort_models.py)
# as a client; a cache one row too long stops the run and fails at step 1; compare and report.
# (The real export in ONNX Runtime is checked by export_golden, parity_onnx and client_tjs: a
# session of it takes longer than ORT 1.30's env thread waits before a one-time allocation that
# LeakSanitizer would report, ~8 s under the slow unwinder.)                     (unit, export, ort)
add_executable(test_export_kv ${CMAKE_CURRENT_SOURCE_DIR}/test_export_kv.c)
target_link_libraries(test_export_kv PRIVATE testutil export parity)
add_test(NAME test_export_kv COMMAND test_export_kv ${CMAKE_CURRENT_SOURCE_DIR}/ort_models.py)
set_tests_properties(test_export_kv PROPERTIES LABELS "unit;export;ort" TIMEOUT 300
  ENVIRONMENT "GOLDEN=${GOLDEN};TMPDIR_BASE=${CMAKE_CURRENT_BINARY_DIR}")
