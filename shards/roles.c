/* Names, dtypes and shapes of the checkpoint roles in both layouts (spec sections 3, 11). */
#include <stdio.h>
#include <string.h>

#include "ckpt.h"

static const char *const orig_global[] = {"embedding.weight", "norm.scale", "unembedding.weight"};
static const char *const hf_global[] = {"model.embed_tokens.weight", "model.norm.weight",
                                        "lm_head.weight"};

/* Per-layer suffixes, indexed by role - CK_FIRST_LAYER_ROLE. */
static const char *const orig_layer[CK_N_LAYER_ROLES] = {
    "attn.norm.scale",        "attn.qkv.weight",        "attn.qkv.bias",
    "attn.sinks",             "attn.out.weight",        "attn.out.bias",
    "mlp.norm.scale",         "mlp.gate.weight",        "mlp.gate.bias",
    "mlp.mlp1_weight.blocks", "mlp.mlp1_weight.scales", "mlp.mlp1_bias",
    "mlp.mlp2_weight.blocks", "mlp.mlp2_weight.scales", "mlp.mlp2_bias"};
static const char *const hf_layer[CK_N_LAYER_ROLES] = {
    "input_layernorm.weight",
    NULL, /* q/k/v split */
    NULL,
    "self_attn.sinks",
    "self_attn.o_proj.weight",
    "self_attn.o_proj.bias",
    "post_attention_layernorm.weight",
    "mlp.router.weight",
    "mlp.router.bias",
    "mlp.experts.gate_up_proj_blocks",
    "mlp.experts.gate_up_proj_scales",
    "mlp.experts.gate_up_proj_bias",
    "mlp.experts.down_proj_blocks",
    "mlp.experts.down_proj_scales",
    "mlp.experts.down_proj_bias"};

void ckpt_role_name(int layer, ckpt_role role, char *buf, size_t len) {
  if (ckpt_role_is_global(role))
    snprintf(buf, len, "%s", orig_global[role]);
  else
    snprintf(buf, len, "block.%d.%s", layer, orig_layer[role - CK_FIRST_LAYER_ROLE]);
}

int ckpt_role_hf_names(int layer, ckpt_role role, char names[3][96]) {
  if (ckpt_role_is_global(role)) {
    snprintf(names[0], 96, "%s", hf_global[role]);
    return 1;
  }
  if (role == CK_QKV_W || role == CK_QKV_B) {
    const char *suffix = role == CK_QKV_W ? "weight" : "bias";
    static const char *const proj[3] = {"q_proj", "k_proj", "v_proj"};
    for (int i = 0; i < 3; i++)
      snprintf(names[i], 96, "model.layers.%d.self_attn.%s.%s", layer, proj[i], suffix);
    return 3;
  }
  snprintf(names[0], 96, "model.layers.%d.%s", layer, hf_layer[role - CK_FIRST_LAYER_ROLE]);
  return 1;
}

int ckpt_role_shape(const gpt_config *c, ckpt_role role, st_dtype *dtype, int64_t shape[4]) {
  const int64_t D = c->hidden, I = c->intermediate, E = c->n_experts, V = c->vocab;
  const int64_t H = c->n_heads, Dh = c->head_dim, QKV = config_qkv_rows(c);
  *dtype = ST_BF16;
  switch (role) {
    case CK_EMBEDDING:
    case CK_UNEMBEDDING: shape[0] = V; shape[1] = D; return 2;
    case CK_NORM:
    case CK_ATTN_NORM:
    case CK_MLP_NORM:
    case CK_OUT_B: shape[0] = D; return 1;
    case CK_QKV_W: shape[0] = QKV; shape[1] = D; return 2;
    case CK_QKV_B: shape[0] = QKV; return 1;
    case CK_SINKS: shape[0] = H; return 1;
    case CK_OUT_W: shape[0] = D; shape[1] = H * Dh; return 2;
    case CK_GATE_W: shape[0] = E; shape[1] = D; return 2;
    case CK_GATE_B: shape[0] = E; return 1;
    case CK_MLP1_BLOCKS:
      *dtype = ST_U8; shape[0] = E; shape[1] = 2 * I; shape[2] = D / 32; shape[3] = 16; return 4;
    case CK_MLP1_SCALES:
      *dtype = ST_U8; shape[0] = E; shape[1] = 2 * I; shape[2] = D / 32; return 3;
    case CK_MLP1_BIAS: shape[0] = E; shape[1] = 2 * I; return 2;
    case CK_MLP2_BLOCKS:
      *dtype = ST_U8; shape[0] = E; shape[1] = D; shape[2] = I / 32; shape[3] = 16; return 4;
    case CK_MLP2_SCALES:
      *dtype = ST_U8; shape[0] = E; shape[1] = D; shape[2] = I / 32; return 3;
    case CK_MLP2_BIAS: shape[0] = E; shape[1] = D; return 2;
    default: return 0;
  }
}
