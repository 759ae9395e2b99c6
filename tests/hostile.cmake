# The hostile-input attack list of issue 10 (tests/hostile_test.py): each case ends with one
# clear error and the documented exit code, leaves nothing that looks finished and no temporary
# file, and neither crashes nor hangs. Labels: fault, plus mpi/export/parity where those run, so
# that the sanitizer build runs them too.
function(hostile_test name labels timeout)
  add_test(NAME hostile_${name} COMMAND ${PY3} ${CMAKE_CURRENT_SOURCE_DIR}/hostile_test.py ${name}
           ${GPTOSS_BIN} ${CMAKE_CURRENT_BINARY_DIR}/hostile-work/${name})
  set_tests_properties(hostile_${name} PROPERTIES LABELS "fault;${labels}" TIMEOUT ${timeout}
    ENVIRONMENT "GOLDEN=${GOLDEN}")
endfunction()

hostile_test(disk-full "mpi;parity" 300)
hostile_test(lost-rank "mpi;parity;ort" 300)
hostile_test(output-is-input "mpi;parity" 300)
hostile_test(device-fifo "parity" 300)
hostile_test(collide "parity" 120)
hostile_test(shrink "mpi;export" 300)
hostile_test(config-fifo "unit" 120)
hostile_test(control-chars "unit" 120)
hostile_test(nul-names "unit" 120)
hostile_test(unreplaceable "mpi;export" 300)
hostile_test(trace-shapes "parity" 300)
hostile_test(trace-huge "parity" 300)
hostile_test(context "parity" 300)
hostile_test(ort-lib-empty "parity" 60)
hostile_test(layers-huge "unit" 120)
hostile_test(signals "mpi;export" 300)
