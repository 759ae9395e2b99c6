/* The byte and parameter figures of spec section 3, computed from a configuration alone.
 * `inspect` computes the same figures from the tensors it finds and compares the two. */
#include <string.h>

#include "ckpt.h"

void ckpt_summary_from_config(const gpt_config *c, ckpt_summary *s) {
  memset(s, 0, sizeof *s);
  const uint64_t L = (uint64_t)c->n_layers, E = (uint64_t)c->n_experts, V = (uint64_t)c->vocab;
  const uint64_t D = (uint64_t)c->hidden, I = (uint64_t)c->intermediate;
  const uint64_t H = (uint64_t)c->n_heads, Dh = (uint64_t)c->head_dim;
  const uint64_t QKV = (uint64_t)config_qkv_rows(c);

  /* Original layout: 3 globals + 15 tensors per layer (a Hugging Face file set has 4 more per
   * layer, the q/k/v split of weight and bias; inspect adds those itself). */
  s->n_tensors = 3 + (uint64_t)CK_N_LAYER_ROLES * L;

  /* attention: norm [D], qkv [QKV, D] + [QKV], sinks [H], out [D, H*Dh] + [D] */
  s->layer_attn_values = D + QKV * D + QKV + H + D * H * Dh + D;
  /* MoE bf16: norm [D], gate [E, D] + [E], mlp1_bias [E, 2I], mlp2_bias [E, D] */
  s->layer_moe_bf16_values = D + E * D + E + E * 2 * I + E * D;
  s->layer_bf16_bytes = 2 * (s->layer_attn_values + s->layer_moe_bf16_values);

  s->mlp1_blocks_bytes = E * 2 * I * (D / 32) * 16;
  s->mlp1_scales_bytes = E * 2 * I * (D / 32);
  s->mlp2_blocks_bytes = E * D * (I / 32) * 16;
  s->mlp2_scales_bytes = E * D * (I / 32);
  s->layer_mxfp4_bytes =
      s->mlp1_blocks_bytes + s->mlp1_scales_bytes + s->mlp2_blocks_bytes + s->mlp2_scales_bytes;
  s->layer_mxfp4_weights = 2 * (s->mlp1_blocks_bytes + s->mlp2_blocks_bytes);
  s->layer_total_bytes = s->layer_bf16_bytes + s->layer_mxfp4_bytes;
  s->layer_experts_bf16_bytes = 2 * s->layer_mxfp4_weights;

  /* embedding [V, D], unembedding [V, D], norm [D] */
  s->global_bf16_values = 2 * V * D + D;
  s->global_bf16_bytes = 2 * s->global_bf16_values;

  s->all_bf16_bytes = s->global_bf16_bytes + L * s->layer_bf16_bytes;
  s->all_mxfp4_bytes = L * s->layer_mxfp4_bytes;
  s->total_bytes = s->all_bf16_bytes + s->all_mxfp4_bytes;
  s->n_params = s->all_bf16_bytes / 2 + L * s->layer_mxfp4_weights;
}
