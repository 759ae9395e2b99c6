/* ckpt_summary_from_config: every figure of spec section 3's byte table, 20B and 120B. */
#include "ckpt.h"
#include "testutil.h"

#define EQ(field, want) \
  TU_CHECK(s.field == (uint64_t)(want), "%s " #field ": %llu, spec %llu", name, \
           (unsigned long long)s.field, (unsigned long long)(want))

int main(void) {
  ckpt_summary s;
  gpt_config c;
  const char *name = "20b";
  config_preset_20b(&c);
  ckpt_summary_from_config(&c, &s);
  EQ(layer_bf16_bytes / 2, 26924576ull);
  EQ(layer_bf16_bytes, 53849152ull);
  EQ(layer_attn_values, 26553024ull);
  EQ(layer_moe_bf16_values, 371552ull);
  EQ(layer_mxfp4_bytes, 423014400ull);
  EQ(layer_mxfp4_weights, 796262400ull);
  EQ(mlp1_blocks_bytes, 265420800ull);
  EQ(mlp1_scales_bytes, 16588800ull);
  EQ(mlp2_blocks_bytes, 132710400ull);
  EQ(mlp2_scales_bytes, 8294400ull);
  EQ(layer_total_bytes, 476863552ull);
  EQ(global_bf16_values, 1158269760ull);
  EQ(global_bf16_bytes, 2316539520ull);
  EQ(all_bf16_bytes, 3608919168ull);
  EQ(all_mxfp4_bytes, 10152345600ull);
  EQ(total_bytes, 13761264768ull);
  EQ(n_params, 20914757184ull);
  EQ(layer_experts_bf16_bytes, 1592524800ull);
  EQ(n_tensors, 3ull + 24 * 15);
  TU_CHECK((long)(s.total_bytes / 1073741824.0 * 100 + 0.5) == 1282, "20b GiB %.4f",
           s.total_bytes / 1073741824.0);

  name = "120b";
  config_preset_120b(&c);
  ckpt_summary_from_config(&c, &s);
  EQ(layer_bf16_bytes / 2, 28030592ull);
  EQ(layer_bf16_bytes, 56061184ull);
  EQ(layer_attn_values, 26553024ull);
  EQ(layer_moe_bf16_values, 1477568ull);
  EQ(layer_mxfp4_bytes, 1692057600ull);
  EQ(layer_mxfp4_weights, 3185049600ull);
  EQ(mlp1_blocks_bytes, 1061683200ull);
  EQ(mlp1_scales_bytes, 66355200ull);
  EQ(mlp2_blocks_bytes, 530841600ull);
  EQ(mlp2_scales_bytes, 33177600ull);
  EQ(layer_total_bytes, 1748118784ull);
  EQ(global_bf16_values, 1158269760ull);
  EQ(global_bf16_bytes, 2316539520ull);
  EQ(all_bf16_bytes, 4334742144ull);
  EQ(all_mxfp4_bytes, 60914073600ull);
  EQ(total_bytes, 65248815744ull);
  EQ(n_params, 116829156672ull);
  EQ(layer_experts_bf16_bytes, 6370099200ull);
  EQ(n_tensors, 3ull + 36 * 15);
  TU_CHECK((long)(s.total_bytes / 1073741824.0 * 100 + 0.5) == 6077, "120b GiB %.4f",
           s.total_bytes / 1073741824.0);
  return tu_finish("test_summary");
}
