/* export_client: the files beside an exported decoder that make its directory a model that
 * clients load as it is (docs/export.md "Files"):
 *
 *   config.json             Hugging Face keys (model_type gpt_oss; transformers.js reads
 *                           num_key_value_heads, head_dim, num_hidden_layers, ...)
 *   generation_config.json  greedy defaults, bos/eos/pad ids of o200k_harmony
 *   genai_config.json       ONNX Runtime GenAI: type gptoss, decoder file onnx/model.onnx and
 *                           its I/O name templates, past_present_share_buffer false (the graph
 *                           concatenates its cache), context_length = the RoPE caches' rows
 *   tokenizer.json, tokenizer_config.json, special_tokens_map.json, chat_template.jinja
 *                           copied from the checkpoint directory, else from its repository root
 *                           (the parent of original/), when present. When the template is only
 *                           in chat_template.jinja, the copied tokenizer_config.json gets it as
 *                           "chat_template" too (where transformers.js looks for it). Without a
 *                           tokenizer.json there, but with a vocabulary (--tokenizer F, or an
 *                           o200k_base.tiktoken beside the checkpoint or at its root),
 *                           tokenizer.json and tokenizer_config.json (with the harmony chat
 *                           template) are generated from it (tokenizer/tok.h).
 *
 * Every file is written atomically (atomic.h). Sub-models (--layers A:B) get none of them: they
 * are not decoders. Local (no MPI). */
#ifndef GPTOSS_EXPORT_CLIENT_H
#define GPTOSS_EXPORT_CLIENT_H

#include "ckpt.h"
#include "err.h"
#include "export_layout.h"

/* o200k_harmony ids (docs/gpt-oss-spec.md section 12) */
#define EXPORT_BOS_ID 199998
#define EXPORT_PAD_ID 199999
#define EXPORT_N_EOS 3
extern const int export_eos_ids[EXPORT_N_EOS]; /* 200002 <|return|>, 199999, 200012 <|call|> */

/* Every file name this module may write into an export directory (for cleanup). */
#define EXPORT_N_CLIENT_FILES 7
extern const char *const export_client_files[EXPORT_N_CLIENT_FILES];

/* Write the client files of layout L's model into the export directory dir; tokenizer files
 * are looked up beside checkpoint ck, or made from tok_path (may be NULL) when given. n_copied
 * (may be NULL): tokenizer files copied or generated. */
int export_client_files_write(const export_layout *L, const ckpt *ck, const char *dir,
                              const char *tok_path, int *n_copied, err *e);

#endif
