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
