# model: the forward pass (model/), traces (parity/trace.c) and `gptoss-mpi run`.
#   test_model_golden  fp32 and bf16 vs golden/case-a, every captured tensor    (unit, golden)
#   test_model_kv      KV-cache decode == fresh prefill; split prefill          (unit)
#   test_model_cli     run --trace vs the golden, usage errors, no file left    (golden)
#   test_model_ref     other configurations vs tests/ref_forward.py (numpy)     (golden, slow)
#   test_kern          SIMD kernels == the scalar reference, bit for bit        (unit)
#   test_pool          kernel threads: every task once, resizes, short runs     (unit)
#   test_model_isa     run --trace with GPTOSS_SIMD=scalar|avx2 == default, bitwise (golden)
add_library(test_model_check STATIC ${CMAKE_CURRENT_SOURCE_DIR}/test_model_check.c)
target_link_libraries(test_model_check PUBLIC testutil parity model)

gptoss_unit_test(test_model_golden SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_model_golden.c
                 LIBS test_model_check parity model shards HDF5::HDF5 LABELS golden)
gptoss_unit_test(test_model_kv SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_model_kv.c
                 LIBS test_model_check model shards)

gptoss_unit_test(test_kern SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_kern.c LIBS model shards)
gptoss_unit_test(test_pool SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_pool.c LIBS model)

add_test(NAME test_model_isa COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/model_isa.sh $<TARGET_FILE:gptoss-mpi>)
set_tests_properties(test_model_isa PROPERTIES LABELS "golden" TIMEOUT 120
  ENVIRONMENT "GOLDEN=${GOLDEN};TMPDIR_BASE=${CMAKE_CURRENT_BINARY_DIR}")

add_test(NAME test_model_cli
         COMMAND ${PY3} ${CMAKE_CURRENT_SOURCE_DIR}/test_model_cli.py $<TARGET_FILE:gptoss-mpi>)
set_tests_properties(test_model_cli PROPERTIES LABELS "golden" TIMEOUT 300
  ENVIRONMENT "GOLDEN=${GOLDEN};TMPDIR_BASE=${CMAKE_CURRENT_BINARY_DIR}")

add_test(NAME test_model_ref
         COMMAND ${PY3} ${CMAKE_CURRENT_SOURCE_DIR}/test_model_ref.py $<TARGET_FILE:gptoss-mpi>
                 ${CMAKE_CURRENT_BINARY_DIR}/model-ref-work)
set_tests_properties(test_model_ref PROPERTIES LABELS "golden;slow" TIMEOUT 900
  ENVIRONMENT "GOLDEN=${GOLDEN}")
