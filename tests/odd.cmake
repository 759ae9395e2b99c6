# A checkpoint with its data at an odd byte offset (tests/odd_offsets.py): bf16 loads must not
# assume alignment. In the mpi, export and golden labels, so that the sanitizer build (UBSan's
# alignment check) runs it.
add_test(NAME odd_offsets COMMAND ${PY3} ${CMAKE_CURRENT_SOURCE_DIR}/odd_offsets.py ${GPTOSS_BIN}
         $<TARGET_FILE:test_export_ort> ${CMAKE_CURRENT_BINARY_DIR}/odd-offsets-work)
set_tests_properties(odd_offsets PROPERTIES LABELS "export;mpi;golden;fault" TIMEOUT 600
  ENVIRONMENT "GOLDEN=${GOLDEN}")
