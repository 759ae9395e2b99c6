# shards: safetensors, config, catalog, MXFP4 and the corrupt-input matrix.
add_library(stwrite STATIC ${CMAKE_CURRENT_SOURCE_DIR}/stwrite.c)
target_include_directories(stwrite PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})

gptoss_unit_test(test_st SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_st.c LIBS shards stwrite)
gptoss_unit_test(test_config SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_config.c LIBS shards)
gptoss_unit_test(test_mx4 SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_mx4.c LIBS shards HDF5::HDF5
                 LABELS golden)
gptoss_unit_test(test_ckpt SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_ckpt.c
                 LIBS shards stwrite PkgConfig::CJSON LABELS golden)
gptoss_unit_test(test_corrupt SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_corrupt.c
                 LIBS shards stwrite PkgConfig::CJSON LABELS fault)

# The same corrupt checkpoints through the command line: exit 1, one error line, no stdout.
if(TARGET gptoss-mpi)
  add_test(NAME corrupt_cli
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/corrupt_cli.sh $<TARGET_FILE:gptoss-mpi>
                   $<TARGET_FILE:test_corrupt> ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(corrupt_cli PROPERTIES LABELS "fault" TIMEOUT 600
    ENVIRONMENT "GOLDEN=${GOLDEN};TMPDIR_BASE=${CMAKE_CURRENT_BINARY_DIR}")
endif()
