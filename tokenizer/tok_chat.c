/* The o200k_harmony special tokens, the stop tokens, and the harmony chat rendering
 * (openai-harmony src/encoding.rs: system and developer content, message headers). */
#include <string.h>

#include "tok_internal.h"

/* ---- special tokens ------------------------------------------------------------------------ */

/* Names of ids 199998..201087, built by the preprocessor so that the table is constant. */
#define RSV(n) "<|reserved_" #n "|>",
#define RSV10(p) RSV(p##0) RSV(p##1) RSV(p##2) RSV(p##3) RSV(p##4) RSV(p##5) RSV(p##6) RSV(p##7) RSV(p##8) RSV(p##9)
#define RSV100(p) RSV10(p##0) RSV10(p##1) RSV10(p##2) RSV10(p##3) RSV10(p##4) RSV10(p##5) RSV10(p##6) \
  RSV10(p##7) RSV10(p##8) RSV10(p##9)
static const char *const special_names[] = {
    "<|startoftext|>", "<|endoftext|>", RSV(200000) RSV(200001) "<|return|>", "<|constrain|>",
    RSV(200004) "<|channel|>", "<|start|>", "<|end|>", "<|message|>", RSV(200009) RSV(200010)
    RSV(200011) "<|call|>", RSV(200013) RSV(200014) RSV(200015) RSV(200016) RSV(200017)
    "<|endofprompt|>", RSV(200019)
    RSV10(20002) RSV10(20003) RSV10(20004) RSV10(20005) RSV10(20006) RSV10(20007) RSV10(20008) RSV10(20009)
    RSV100(2001) RSV100(2002) RSV100(2003) RSV100(2004) RSV100(2005) RSV100(2006) RSV100(2007)
    RSV100(2008) RSV100(2009)
    RSV10(20100) RSV10(20101) RSV10(20102) RSV10(20103) RSV10(20104) RSV10(20105) RSV10(20106) RSV10(20107)
    RSV(201080) RSV(201081) RSV(201082) RSV(201083) RSV(201084) RSV(201085) RSV(201086) RSV(201087)
};
_Static_assert(sizeof special_names / sizeof special_names[0] == TOK_N_VOCAB - TOK_FIRST_SPECIAL,
               "one name per special id");

const char *tok_special_name(int32_t id) {
  if (id < TOK_FIRST_SPECIAL || id >= TOK_N_VOCAB) return NULL;
  return special_names[id - TOK_FIRST_SPECIAL];
}

int32_t tok_special_find(const char *s, size_t n) {
  if (n < 5 || s[0] != '<' || s[1] != '|') return -1;
  for (int32_t i = 0; i < TOK_N_VOCAB - TOK_FIRST_SPECIAL; i++)
    if (strlen(special_names[i]) == n && memcmp(special_names[i], s, n) == 0) return TOK_FIRST_SPECIAL + i;
  static const char alias[] = "<|reserved_200018|>";     /* openai-harmony's name */
  if (n == sizeof alias - 1 && memcmp(s, alias, n) == 0) return TOK_ENDOFPROMPT;
  return -1;
}

int tok_is_stop(int32_t id) { return id == TOK_RETURN || id == TOK_CALL; }

size_t tok_eos_ids(const int32_t **ids) {
  static const int32_t eos[3] = {TOK_RETURN, TOK_ENDOFTEXT, TOK_CALL};
  *ids = eos;
  return 3;
}

/* ---- harmony chat -------------------------------------------------------------------------- */

static const char system_head[] =
    "You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\n\nReasoning: ";
static const char system_tail[] =
    "\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.";
static const char developer_head[] = "# Instructions\n\n";

void tok_chat_init(tok_chat *c) {
  memset(c, 0, sizeof *c);
  c->reasoning = TOK_REASONING_MEDIUM;
  c->user = "";
}

int tok_reasoning_parse(const char *s, tok_reasoning *out) {
  for (int r = TOK_REASONING_LOW; r <= TOK_REASONING_HIGH; r++)
    if (s && strcmp(s, tok_reasoning_name((tok_reasoning)r)) == 0) {
      *out = (tok_reasoning)r;
      return 0;
    }
  return -1;
}

const char *tok_reasoning_name(tok_reasoning r) {
  return r == TOK_REASONING_LOW ? "low" : r == TOK_REASONING_HIGH ? "high" : "medium";
}

/* The message bodies, each one string (harmony encodes each body in one piece). */
typedef struct {
  const char *role[3], *what[3];
  tok_buf body[3];
  int n;
} chat_msgs;

static int chat_build(const tok_chat *c, chat_msgs *m, err *e) {
  memset(m, 0, sizeof *m);
  const char *rn = tok_reasoning_name(c->reasoning);
  m->role[0] = "system";
  m->what[0] = "system message";
  if (tok_buf_append(&m->body[0], system_head, strlen(system_head), e) != 0 ||
      tok_buf_append(&m->body[0], rn, strlen(rn), e) != 0 ||
      tok_buf_append(&m->body[0], system_tail, strlen(system_tail), e) != 0)
    return -1;
  m->n = 1;
  if (c->developer) {
    m->role[m->n] = "developer";
    m->what[m->n] = "developer message";
    if (tok_buf_append(&m->body[m->n], developer_head, strlen(developer_head), e) != 0 ||
        tok_buf_append(&m->body[m->n], c->developer, c->developer_len, e) != 0)
      return -1;
    m->n++;
  }
  m->role[m->n] = "user";
  m->what[m->n] = "user message";
  if (tok_buf_append(&m->body[m->n], c->user ? c->user : "", c->user ? c->user_len : 0, e) != 0) return -1;
  m->n++;
  return 0;
}

static void chat_free(chat_msgs *m) {
  for (int i = 0; i < 3; i++) tok_buf_free(&m->body[i]);
}

int tok_chat_encode(const tok *t, const tok_chat *c, tok_ids *out, err *e) {
  chat_msgs m;
  int rc = chat_build(c, &m, e);
  for (int i = 0; rc == 0 && i < m.n; i++) {
    rc = tok_ids_push(out, TOK_START, e);
    if (rc == 0) rc = tok_encode(t, "role", m.role[i], strlen(m.role[i]), out, e);
    if (rc == 0) rc = tok_ids_push(out, TOK_MESSAGE, e);
    if (rc == 0) rc = tok_encode(t, m.what[i], m.body[i].p ? m.body[i].p : "", m.body[i].n, out, e);
    if (rc == 0) rc = tok_ids_push(out, TOK_END, e);
  }
  if (rc == 0) rc = tok_ids_push(out, TOK_START, e);
  if (rc == 0) rc = tok_encode(t, "role", "assistant", 9, out, e);
  chat_free(&m);
  return rc;
}

int tok_chat_text(const tok_chat *c, tok_buf *out, err *e) {
  chat_msgs m;
  int rc = chat_build(c, &m, e);
  for (int i = 0; rc == 0 && i < m.n; i++) {
    const char *head = "<|start|>", *sep = "<|message|>", *end = "<|end|>";
    if (tok_buf_append(out, head, strlen(head), e) != 0 ||
        tok_buf_append(out, m.role[i], strlen(m.role[i]), e) != 0 ||
        tok_buf_append(out, sep, strlen(sep), e) != 0 ||
        tok_buf_append(out, m.body[i].p ? m.body[i].p : "", m.body[i].n, e) != 0 ||
        tok_buf_append(out, end, strlen(end), e) != 0)
      rc = -1;
  }
  if (rc == 0) rc = tok_buf_append(out, "<|start|>assistant", 18, e);
  chat_free(&m);
  return rc;
}
