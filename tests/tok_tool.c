/* tok_tool: what the tokenizer tests need from tokenizer/ that the command line does not offer.
 *   tok_tool write-hf VOCAB DIR                 DIR/tokenizer.json + tokenizer_config.json (DIR
 *                                               is made if absent)
 *   tok_tool chat-text [-r R] [-s SYSTEM] USER  the harmony rendering as text (tok_chat_text)
 *   tok_tool template                           the chat template (tok_chat_template)
 * Exit 0 ok, 1 error (message on stderr). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "tok.h"

static int fail(const err *e) {
  fprintf(stderr, "tok_tool: %s\n", e->msg);
  return 1;
}

int main(int argc, char **argv) {
  err e = {0};
  if (argc == 4 && !strcmp(argv[1], "write-hf")) {
    tok *t;
    if (tok_open(argv[2], &t, &e) != 0) return fail(&e);
    mkdir(argv[3], 0755);
    int rc = tok_hf_write_dir(t, argv[3], &e);
    tok_close(t);
    return rc ? fail(&e) : 0;
  }
  if (argc >= 3 && !strcmp(argv[1], "chat-text")) {
    tok_chat c;
    tok_chat_init(&c);
    int i = 2;
    for (; i + 1 < argc; i += 2) {
      if (!strcmp(argv[i], "-r") && tok_reasoning_parse(argv[i + 1], &c.reasoning) == 0) continue;
      if (!strcmp(argv[i], "-s")) { c.developer = argv[i + 1]; c.developer_len = strlen(argv[i + 1]); continue; }
      break;
    }
    if (i != argc - 1) { fprintf(stderr, "tok_tool: chat-text [-r R] [-s SYSTEM] USER\n"); return 2; }
    c.user = argv[i];
    c.user_len = strlen(argv[i]);
    tok_buf b = {0};
    if (tok_chat_text(&c, &b, &e) != 0) return fail(&e);
    fwrite(b.p, 1, b.n, stdout);
    tok_buf_free(&b);
    return 0;
  }
  if (argc == 2 && !strcmp(argv[1], "template")) {
    fputs(tok_chat_template(), stdout);
    return 0;
  }
  fprintf(stderr, "usage: tok_tool write-hf VOCAB DIR | chat-text [-r R] [-s SYSTEM] USER | template\n");
  return 2;
}
