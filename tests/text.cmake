# Text prompts and generated text through `run` and `parity` (tests/text_test.py) against
# tiktoken (npm), and transformers.js's text-generation pipeline on our export.
add_test(NAME text_run COMMAND ${PY3} ${CMAKE_CURRENT_SOURCE_DIR}/text_test.py ${GPTOSS_BIN}
         ${CMAKE_CURRENT_BINARY_DIR}/text-work)
set_tests_properties(text_run PROPERTIES LABELS "tokenizer;golden;client;mpi;parity" TIMEOUT 600
  ENVIRONMENT "TOK_DEPS=${PROJECT_SOURCE_DIR}/.deps/tok/node_modules;TOK_RANKS=${PROJECT_SOURCE_DIR}/.deps/tok/node_modules/gpt-tokenizer/data/o200k_base.tiktoken;TJS_DIR=${PROJECT_SOURCE_DIR}/.deps/tjs")
