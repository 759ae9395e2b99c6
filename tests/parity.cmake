# parity harness (issue 6).
add_test(NAME parity_files COMMAND ${PY3} ${CMAKE_CURRENT_SOURCE_DIR}/parity_files.py ${GPTOSS_BIN}
         ${GOLDEN} ${CMAKE_CURRENT_BINARY_DIR}/parity_files)
set_tests_properties(parity_files PROPERTIES LABELS "golden;mpi;parity" TIMEOUT 300)
add_test(NAME parity_onnx COMMAND ${PY3} ${CMAKE_CURRENT_SOURCE_DIR}/parity_onnx.py ${GPTOSS_BIN}
         ${GOLDEN} ${CMAKE_CURRENT_BINARY_DIR}/parity_onnx)
set_tests_properties(parity_onnx PROPERTIES LABELS "golden;mpi;parity;ort" TIMEOUT 600)
add_test(NAME parity_stage COMMAND ${PY3} ${CMAKE_CURRENT_SOURCE_DIR}/parity_stage.py ${GPTOSS_BIN}
         ${GOLDEN} ${CMAKE_CURRENT_BINARY_DIR}/parity_stage)
set_tests_properties(parity_stage PROPERTIES LABELS "golden;mpi;parity;ort" TIMEOUT 600)
# per-stage parity's memory per rank against `plan --per-stage` (issue 15; a 1.7 GB synth of 20b
# widths, deleted afterwards; ~1.5 GB of RAM per rank, 4 ranks)
add_test(NAME parity_stage_mem COMMAND ${PY3} ${CMAKE_CURRENT_SOURCE_DIR}/parity_stage_mem.py
         ${GPTOSS_BIN} ${CMAKE_CURRENT_BINARY_DIR}/parity_stage_mem)
set_tests_properties(parity_stage_mem PROPERTIES LABELS "mpi;parity;ort;slow" TIMEOUT 900)
