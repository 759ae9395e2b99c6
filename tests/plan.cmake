# The shard plan (issue 4, item 1).
gptoss_unit_test(test_plan SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_plan.c LIBS shards)
add_test(NAME plan_cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/plan_cli.sh ${GPTOSS_BIN} ${GOLDEN})
set_tests_properties(plan_cli PROPERTIES LABELS "unit" TIMEOUT 60)
