# The shard plan (issue 4, item 1).
gptoss_unit_test(test_plan SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_plan.c LIBS shards)
add_test(NAME plan_cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/plan_cli.sh ${GPTOSS_BIN} ${GOLDEN})
set_tests_properties(plan_cli PROPERTIES LABELS "unit" TIMEOUT 60)
# plan_scratch_bytes must equal model_open's allocations; the second checkpoint (synth with a
# large vocabulary relative to its widths) makes the unembedding chunk the largest conversion.
add_executable(test_plan_model ${CMAKE_CURRENT_SOURCE_DIR}/test_plan_model.c)
target_link_libraries(test_plan_model PRIVATE testutil model shards)
add_test(NAME test_plan_model COMMAND bash -c
  "rm -rf \"$1\" && \"$0\" synth \"$1\" --preset tiny --seed 3 -q && \"$2\" \"$1\"; rc=$?; rm -rf \"$1\"; exit $rc"
  ${GPTOSS_BIN} ${CMAKE_CURRENT_BINARY_DIR}/plan_model_ckpt $<TARGET_FILE:test_plan_model>)
set_tests_properties(test_plan_model PROPERTIES LABELS "unit" TIMEOUT 120
  ENVIRONMENT "GOLDEN=${GOLDEN};TMPDIR_BASE=${CMAKE_CURRENT_BINARY_DIR}")
