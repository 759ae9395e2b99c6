# synth, inspect, config writers and the section 3 figures (shards/synth.h, mpi/cmd_synth.c,
# mpi/cmd_inspect.c). Script tests run tests/synth_test.sh MODE ...; each uses its own work
# directory and removes what it wrote.
gptoss_unit_test(test_config_write SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_config_write.c)
gptoss_unit_test(test_summary SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_summary.c)

# Header-only (sparse) checkpoints of full real shape, for `inspect` at 20B / 120B size.
add_executable(synth_sparse ${CMAKE_CURRENT_SOURCE_DIR}/synth_sparse.c)
target_link_libraries(synth_sparse PRIVATE shards)

set(SYNTH_SH ${CMAKE_CURRENT_SOURCE_DIR}/synth_test.sh)
set(SYNTH_PY ${CMAKE_CURRENT_SOURCE_DIR}/synth_check.py)
set(SYNTH_WORK ${CMAKE_CURRENT_BINARY_DIR}/synth-work)

function(synth_script_test name labels timeout)
  add_test(NAME ${name} COMMAND bash ${SYNTH_SH} ${ARGN})
  set_tests_properties(${name} PROPERTIES LABELS "${labels}" TIMEOUT ${timeout}
    ENVIRONMENT "GPTOSS_BIN=${GPTOSS_BIN};PY3=${PY3};SYNTH_PY=${SYNTH_PY};SYNTH_WORK=${SYNTH_WORK}/${name};SYNTH_SPARSE=$<TARGET_FILE:synth_sparse>;GOLDEN=${GOLDEN}")
endfunction()

synth_script_test(synth_tiny_original "synth" 120 roundtrip tiny original)
synth_script_test(synth_tiny_hf "synth" 120 roundtrip tiny hf)
synth_script_test(synth_tiny_options "synth" 120 roundtrip tiny hf --layers 3 --experts 3)
synth_script_test(synth_deterministic "synth" 120 determinism)
synth_script_test(synth_20b_l1_original "synth;slow" 900 roundtrip 20b original --layers 1)
synth_script_test(synth_20b_l1_hf "synth;slow" 900 roundtrip 20b hf --layers 1)
synth_script_test(synth_120b_l1_original "synth;slow" 1200 roundtrip 120b original --layers 1)
synth_script_test(synth_120b_l1_hf "synth;slow" 1200 roundtrip 120b hf --layers 1)
synth_script_test(inspect_full_size_sparse "synth" 300 sparse)
synth_script_test(synth_errors "synth;fault" 120 errors)
synth_script_test(synth_killed "synth;fault" 300 killed)
