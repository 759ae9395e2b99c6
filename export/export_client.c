/* Client files beside an exported decoder (export_client.h). */
#include "export_client.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "config.h"
#include "export_graph.h"
#include "tok.h"

const int export_eos_ids[EXPORT_N_EOS] = {200002, 199999, 200012};

/* Print root (consumed) into dir/name atomically. */
static int json_save(cJSON *root, const char *dir, const char *name, err *e) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  char *text = root ? cJSON_Print(root) : NULL;
  cJSON_Delete(root);
  if (!text) return err_set(e, EXIT_RUNTIME, "%s: out of memory", path);
  size_t n = strlen(text);
  text[n] = '\n'; /* cJSON_Print's terminating NUL becomes the final newline */
  int rc = atomic_write_file(path, text, n + 1, e);
  free(text);
  return rc;
}

static cJSON *eos_array(void) {
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; a && i < EXPORT_N_EOS; i++)
    cJSON_AddItemToArray(a, cJSON_CreateNumber(export_eos_ids[i]));
  return a;
}

/* config.json: the Hugging Face spelling of the exported config (shards/config_write.c), with
 * the token ids, the context the graph accepts, and no quantization_config (there are no
 * transformers weights in the export). */
static int write_config(const export_layout *L, const char *dir, err *e) {
  char buf[1 << 16];
  if (config_to_json_hf(&L->c, buf, sizeof buf) < 0)
    return err_set(e, EXIT_RUNTIME, "config.json: the configuration does not fit in %zu bytes",
                   sizeof buf);
  cJSON *root = cJSON_Parse(buf);
  if (!root) return err_set(e, EXIT_RUNTIME, "config.json: out of memory");
  cJSON_DeleteItemFromObjectCaseSensitive(root, "quantization_config");
  cJSON_DeleteItemFromObjectCaseSensitive(root, "max_position_embeddings");
  cJSON_AddNumberToObject(root, "max_position_embeddings", L->o.max_positions);
  cJSON_AddNumberToObject(root, "bos_token_id", EXPORT_BOS_ID);
  cJSON_AddNumberToObject(root, "eos_token_id", export_eos_ids[0]);
  cJSON_AddNumberToObject(root, "pad_token_id", EXPORT_PAD_ID);
  return json_save(root, dir, "config.json", e);
}

static int write_generation_config(const char *dir, err *e) {
  cJSON *root = cJSON_CreateObject();
  if (root) {
    cJSON_AddNumberToObject(root, "bos_token_id", EXPORT_BOS_ID);
    cJSON_AddBoolToObject(root, "do_sample", 0);
    cJSON_AddItemToObject(root, "eos_token_id", eos_array());
    cJSON_AddNumberToObject(root, "num_beams", 1);
    cJSON_AddNumberToObject(root, "pad_token_id", EXPORT_PAD_ID);
  }
  return json_save(root, dir, "generation_config.json", e);
}

/* genai_config.json: only keys ONNX Runtime GenAI's parser knows (src/config.cpp rejects others);
 * the same layout as its model builder writes. */
static int write_genai_config(const export_layout *L, const char *dir, err *e) {
  const gpt_config *c = &L->c;
  cJSON *root = cJSON_CreateObject(), *model = cJSON_CreateObject(), *dec = cJSON_CreateObject();
  cJSON *so = cJSON_CreateObject(), *in = cJSON_CreateObject(), *out = cJSON_CreateObject();
  cJSON *search = cJSON_CreateObject();
  if (!root || !model || !dec || !so || !in || !out || !search) {
    cJSON_Delete(root); cJSON_Delete(model); cJSON_Delete(dec); cJSON_Delete(so);
    cJSON_Delete(in); cJSON_Delete(out); cJSON_Delete(search);
    return err_set(e, EXIT_RUNTIME, "genai_config.json: out of memory");
  }
  cJSON_AddItemToObject(root, "model", model);
  cJSON_AddNumberToObject(model, "bos_token_id", EXPORT_BOS_ID);
  cJSON_AddNumberToObject(model, "context_length", L->o.max_positions);
  cJSON_AddItemToObject(model, "decoder", dec);
  cJSON_AddItemToObject(dec, "session_options", so);
  cJSON_AddStringToObject(so, "log_id", "onnxruntime-genai");
  cJSON_AddItemToObject(so, "provider_options", cJSON_CreateArray());
  cJSON_AddStringToObject(dec, "filename", EXPORT_MODEL_FILE);
  cJSON_AddNumberToObject(dec, "head_size", c->head_dim);
  cJSON_AddNumberToObject(dec, "hidden_size", c->hidden);
  cJSON_AddItemToObject(dec, "inputs", in);
  cJSON_AddStringToObject(in, "input_ids", "input_ids");
  cJSON_AddStringToObject(in, "attention_mask", "attention_mask");
  cJSON_AddStringToObject(in, "position_ids", "position_ids");
  cJSON_AddStringToObject(in, "past_key_names", EXPORT_PAST_KEY);
  cJSON_AddStringToObject(in, "past_value_names", EXPORT_PAST_VALUE);
  cJSON_AddItemToObject(dec, "outputs", out);
  cJSON_AddStringToObject(out, "logits", "logits");
  cJSON_AddStringToObject(out, "present_key_names", EXPORT_PRESENT_KEY);
  cJSON_AddStringToObject(out, "present_value_names", EXPORT_PRESENT_VALUE);
  cJSON_AddNumberToObject(dec, "num_attention_heads", c->n_heads);
  cJSON_AddNumberToObject(dec, "num_hidden_layers", c->n_layers);
  cJSON_AddNumberToObject(dec, "num_key_value_heads", c->n_kv_heads);
  cJSON_AddItemToObject(model, "eos_token_id", eos_array());
  cJSON_AddNumberToObject(model, "pad_token_id", EXPORT_PAD_ID);
  cJSON_AddStringToObject(model, "type", "gptoss");
  cJSON_AddNumberToObject(model, "vocab_size", c->vocab);
  cJSON_AddItemToObject(root, "search", search);
  cJSON_AddNumberToObject(search, "diversity_penalty", 0.0);
  cJSON_AddBoolToObject(search, "do_sample", 0);
  cJSON_AddBoolToObject(search, "early_stopping", 1);
  cJSON_AddNumberToObject(search, "length_penalty", 1.0);
  cJSON_AddNumberToObject(search, "max_length", L->o.max_positions);
  cJSON_AddNumberToObject(search, "min_length", 0);
  cJSON_AddNumberToObject(search, "no_repeat_ngram_size", 0);
  cJSON_AddNumberToObject(search, "num_beams", 1);
  cJSON_AddNumberToObject(search, "num_return_sequences", 1);
  cJSON_AddBoolToObject(search, "past_present_share_buffer", 0);
  cJSON_AddNumberToObject(search, "repetition_penalty", 1.0);
  cJSON_AddNumberToObject(search, "temperature", 1.0);
  cJSON_AddNumberToObject(search, "top_k", 1);
  cJSON_AddNumberToObject(search, "top_p", 1.0);
  return json_save(root, dir, "genai_config.json", e);
}

/* ------------------------------------------------------------------ tokenizer files */

/* the last four are the tokenizer files, chat_template.jinja last */
const char *const export_client_files[EXPORT_N_CLIENT_FILES] = {
    "config.json", "generation_config.json", "genai_config.json", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"};
static const char *const *const tokenizer_files = export_client_files + 3;
enum { N_TOKENIZER_FILES = 4 };
#define TOKENIZER_CONFIG_MAX (64u << 20)

/* Where name is: the checkpoint directory, else the repository root; "" if nowhere. A name
 * that exists but is not a regular file is an error (never read a FIFO or a device). */
static int find_file(const char *const *dirs, int n_dirs, const char *name, char *path,
                     size_t len, err *e) {
  path[0] = '\0';
  for (int i = 0; i < n_dirs; i++) {
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", dirs[i], name);
    struct stat st;
    if (stat(p, &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) continue;
      return err_errno(e, errno, "%s", p);
    }
    if (!S_ISREG(st.st_mode))
      return err_set(e, EXIT_RUNTIME, "%s: not a regular file (tokenizer files are copied into "
                     "the export)", p);
    snprintf(path, len, "%s", p);
    return 0;
  }
  return 0;
}

/* Copy src to dst atomically in 1 MiB chunks. */
static int copy_file(const char *src, const char *dst, err *e) {
  int fd = fs_open_regular(src, "tokenizer file", e);
  if (fd < 0) return -1;
  atomic_out *f = NULL;
  void *buf = malloc(1u << 20);
  int rc = buf ? atomic_stage_file(dst, &f, e) : err_set(e, EXIT_RUNTIME, "out of memory");
  for (ssize_t n = 1; rc == 0 && n > 0;) {
    n = read(fd, buf, 1u << 20);
    if (n < 0 && errno == EINTR) { n = 1; continue; }
    if (n < 0) rc = err_errno(e, errno, "%s: read", src);
    else if (n > 0) rc = atomic_write(f, buf, (size_t)n, e);
  }
  close(fd);
  free(buf);
  if (rc == 0) return atomic_publish(f, e);
  atomic_abort(f);
  return -1;
}

/* Read a whole small file (NUL-terminated). Caller frees *out. */
static int slurp(const char *path, char **out, size_t *len, err *e) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return err_errno(e, errno, "%s: cannot open", path);
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size > TOKENIZER_CONFIG_MAX) {
    close(fd);
    return err_set(e, EXIT_RUNTIME, "%s: not a file of at most %u MiB", path, TOKENIZER_CONFIG_MAX >> 20);
  }
  char *b = malloc((size_t)st.st_size + 1);
  size_t got = 0;
  while (b && got < (size_t)st.st_size) {
    ssize_t n = read(fd, b + got, (size_t)st.st_size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  if (!b || got != (size_t)st.st_size) {
    free(b);
    return err_set(e, EXIT_RUNTIME, "%s: cannot read", path);
  }
  b[got] = '\0';
  *out = b;
  *len = got;
  return 0;
}

/* tokenizer_config.json with the template of chat_template.jinja added as "chat_template"
 * (when it has none), written to dst. */
static int write_tokenizer_config_with_template(const char *cfg, const char *tmpl,
                                                const char *dst, err *e) {
  char *ct = NULL, *tt = NULL;
  size_t cl = 0, tl = 0;
  if (slurp(cfg, &ct, &cl, e) != 0) return -1;
  if (slurp(tmpl, &tt, &tl, e) != 0) {
    free(ct);
    return -1;
  }
  cJSON *root = cJSON_ParseWithLength(ct, cl);
  int rc = 0;
  if (!cJSON_IsObject(root)) {
    rc = err_set(e, EXIT_RUNTIME, "%s: not a JSON object (needed to add the chat template of %s)",
                 cfg, tmpl);
  } else if (cJSON_GetObjectItemCaseSensitive(root, "chat_template")) {
    rc = copy_file(cfg, dst, e);
  } else if (strlen(tt) != tl) {
    rc = err_set(e, EXIT_RUNTIME, "%s: holds a NUL byte; not a template", tmpl);
  } else {
    cJSON_AddStringToObject(root, "chat_template", tt);
    char *text = cJSON_Print(root);
    rc = text ? atomic_write_file(dst, text, strlen(text), e) : err_set(e, EXIT_RUNTIME, "out of memory");
    free(text);
  }
  cJSON_Delete(root);
  free(ct);
  free(tt);
  return rc;
}

/* The repository root of a checkpoint directory: its parent when it is an original/ directory.
 * dirs[0] = the directory, dirs[1] = the root (when there is one); returns the count. */
static int tokenizer_dirs(const ckpt *ck, char *root, size_t len, const char *dirs[2]) {
  dirs[0] = ckpt_dir(ck);
  dirs[1] = root;
  snprintf(root, len, "%s", ckpt_dir(ck));
  size_t n = strlen(root);
  while (n > 1 && root[n - 1] == '/') root[--n] = '\0';
  const char *base = strrchr(root, '/');
  if (strcmp(base ? base + 1 : root, "original")) return 1;
  if (base == root) snprintf(root, len, "/");
  else if (base) root[base - root] = '\0';
  else snprintf(root, len, ".");
  return 2;
}

static int copy_tokenizer_files(const ckpt *ck, const char *dir, int *n_copied, err *e) {
  char root[PATH_MAX];
  const char *dirs[2];
  const int n_dirs = tokenizer_dirs(ck, root, sizeof root, dirs);
  char found[N_TOKENIZER_FILES][PATH_MAX];
  for (int i = 0; i < N_TOKENIZER_FILES; i++)
    if (find_file(dirs, n_dirs, tokenizer_files[i], found[i], sizeof found[i], e) != 0) return -1;
  for (int i = 0; i < N_TOKENIZER_FILES; i++) {
    if (!found[i][0]) continue;
    char dst[PATH_MAX];
    snprintf(dst, sizeof dst, "%s/%s", dir, tokenizer_files[i]);
    const int merge = !strcmp(tokenizer_files[i], "tokenizer_config.json") && found[3][0];
    if ((merge ? write_tokenizer_config_with_template(found[i], found[3], dst, e)
               : copy_file(found[i], dst, e)) != 0)
      return -1;
    (*n_copied)++;
  }
  return 0;
}

/* Without a tokenizer.json to copy: the Hugging Face files generated from the vocabulary
 * (tokenizer/tok.h: tokenizer.json from the ranks, tokenizer_config.json with the harmony chat
 * template), when there is one: tok_path, or an o200k_base.tiktoken beside the checkpoint or at
 * its repository root. *made: 1 if written. */
static int generate_tokenizer_files(const ckpt *ck, const char *tok_path, const char *dir,
                                    int *made, err *e) {
  char root[PATH_MAX], ranks[PATH_MAX] = "";
  const char *dirs[2];
  const int n_dirs = tokenizer_dirs(ck, root, sizeof root, dirs);
  *made = 0;
  if (!tok_path) {
    if (find_file(dirs, n_dirs, "o200k_base.tiktoken", ranks, sizeof ranks, e) != 0) return -1;
    if (!ranks[0]) return 0; /* no tokenizer: a model without text files, as the checkpoint */
    tok_path = ranks;
  }
  tok *t = NULL;
  if (tok_open(tok_path, &t, e) != 0) return -1;
  int rc = tok_hf_write_dir(t, dir, e);
  tok_close(t);
  *made = rc == 0;
  return rc;
}

int export_client_files_write(const export_layout *L, const ckpt *ck, const char *dir,
                              const char *tok_path, int *n_copied, err *e) {
  int copied = 0, made = 0;
  if (n_copied) *n_copied = 0;
  if (L->o.sub_model) return 0;
  if (write_config(L, dir, e) != 0 || write_generation_config(dir, e) != 0 ||
      write_genai_config(L, dir, e) != 0)
    return -1;
  /* an explicit --tokenizer wins; else the repository's files as they are; else generated */
  if (!tok_path && copy_tokenizer_files(ck, dir, &copied, e) != 0) return -1;
  char tj[PATH_MAX];
  snprintf(tj, sizeof tj, "%s/tokenizer.json", dir);
  if ((tok_path || access(tj, F_OK) != 0) && generate_tokenizer_files(ck, tok_path, dir, &made, e) != 0)
    return -1;
  if (n_copied) *n_copied = copied + 2 * made;
  return 0;
}
