# export: the ONNX exporter (issue 5), every model checked by ONNX Runtime via parity/ort.h.
#   export_golden     case-a with 1/2/3 ranks x mxfp4/fp32 (+ per-rank files, 2 stages, batch 2):
#                     logits within 2e-5 x max|ref|, routing sets, identical bytes   (mpi, golden)
#   export_structure  op types/counts per layer, I/O, opset/IR, external data only  (mpi)
#   export_fault      injected failures and a killed rank leave nothing finished     (mpi, fault)
#   export_configs    other E, k, heads, odd L, no window, no YaRN, HF, --max-layers
#                     vs `run --trace` of the same checkpoint                        (mpi, golden, slow)
add_executable(test_export_ort ${CMAKE_CURRENT_SOURCE_DIR}/test_export_ort.c)
target_link_libraries(test_export_ort PRIVATE parity)

foreach(what golden structure fault configs)
  add_test(NAME export_${what}
           COMMAND ${PY3} ${CMAKE_CURRENT_SOURCE_DIR}/export_test.py ${what} ${GPTOSS_BIN}
                   $<TARGET_FILE:test_export_ort> ${CMAKE_CURRENT_BINARY_DIR}/export-${what}-work)
endforeach()
set_tests_properties(export_golden PROPERTIES LABELS "export;mpi;golden" TIMEOUT 600
  ENVIRONMENT "GOLDEN=${GOLDEN}")
set_tests_properties(export_structure PROPERTIES LABELS "export;mpi" TIMEOUT 300
  ENVIRONMENT "GOLDEN=${GOLDEN}")
set_tests_properties(export_fault PROPERTIES LABELS "export;mpi;fault" TIMEOUT 300
  ENVIRONMENT "GOLDEN=${GOLDEN}")
set_tests_properties(export_configs PROPERTIES LABELS "export;mpi;golden;slow" TIMEOUT 900
  ENVIRONMENT "GOLDEN=${GOLDEN}")

# export's word-at-a-time NaN/inf and scale checks against the byte loops, every value      (unit)
gptoss_unit_test(test_byte_check SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_byte_check.c LIBS export)
# the graph builder alone: a small Loop model through ORT, misuse reported by the writer
gptoss_unit_test(test_export_graph SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_export_graph.c
                 LIBS export parity LABELS export)
# The real 20B and 120B shapes (header-only checkpoints, data as holes) export as decoders that
# ONNX Runtime loads with the decoder's I/O (24 / 36 layers, KV 8, head_dim 64); ~2 s.     (export, ort)
add_executable(test_export_shapes ${CMAKE_CURRENT_SOURCE_DIR}/test_export_shapes.c)
target_link_libraries(test_export_shapes PRIVATE testutil export parity)
add_test(NAME test_export_shapes COMMAND test_export_shapes)
set_tests_properties(test_export_shapes PROPERTIES LABELS "export;ort" TIMEOUT 300
  ENVIRONMENT "TMPDIR_BASE=${CMAKE_CURRENT_BINARY_DIR}")
# export --target ort (issue 13): case-a at 1/2/3 ranks (identical bytes) through ORT, the graph's
# contrib ops and the int8 codes/scales against a numpy re-encoding, the synth configurations,
# parity --onnx (pass; one expert's altered codes or scales fail at their layer), refusals; ~1 min
add_test(NAME export_ort
         COMMAND ${PY3} ${CMAKE_CURRENT_SOURCE_DIR}/export_ort_test.py ${GPTOSS_BIN}
                 $<TARGET_FILE:test_export_ort> ${CMAKE_CURRENT_BINARY_DIR}/export-ort-work)
set_tests_properties(export_ort PROPERTIES LABELS "export;mpi;golden;parity;ort" TIMEOUT 900
  ENVIRONMENT "GOLDEN=${GOLDEN}")
# The decoder's optional num_logits_to_keep (both targets, case-a): not fed / 0 = every position's
# logits; k = 1, 3 = their last k rows bit for bit; the cache unchanged; an overridable initializer
# (not in the session's inputs). ort_logits_keep is also bench_ort.sh's prefill driver. ~10 s
add_executable(ort_logits_keep ${CMAKE_CURRENT_SOURCE_DIR}/ort_logits_keep.c)
target_link_libraries(ort_logits_keep PRIVATE parity pthread)
add_test(NAME export_logits_keep
         COMMAND ${PY3} ${CMAKE_CURRENT_SOURCE_DIR}/export_logits_keep.py ${GPTOSS_BIN}
                 $<TARGET_FILE:ort_logits_keep> ${CMAKE_CURRENT_BINARY_DIR}/export-logits-keep-work)
set_tests_properties(export_logits_keep PROPERTIES LABELS "export;mpi;golden;ort" TIMEOUT 300
  ENVIRONMENT "GOLDEN=${GOLDEN}")
