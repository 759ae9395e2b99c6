/* Parity report: HDF5, Markdown, SVG (report.h). */
#include "report.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "h5io.h"
#include "strbuf.h"

/* ---------------------------------------------------------------- HDF5 */

static int write_meta(hid_t root, const parity_result *r, const parity_meta *m) {
  const gpt_config *c = m->config;
  int rc = 0;
  rc |= h5io_attr_str(root, "tool", "gptoss-mpi");
  rc |= h5io_attr_str(root, "version", GPTOSS_VERSION);
  rc |= h5io_attr_str(root, "verdict", r->pass ? "pass" : "fail");
  rc |= h5io_attr_str(root, "reasons", r->reasons);
  rc |= h5io_attr_int(root, "first_bad_layer", r->first_bad_layer);
  char call[48];
  parity_call_name(r->first_bad_call, call, sizeof call);
  rc |= h5io_attr_int(root, "first_bad_position", r->first_bad_position);
  rc |= h5io_attr_int(root, "first_bad_position_layer", r->first_bad_position_layer);
  rc |= h5io_attr_str(root, "first_bad_call", call);
  rc |= h5io_attr_str(root, "checkpoint", m->checkpoint ? m->checkpoint : "");
  rc |= h5io_attr_str(root, "reference", m->reference ? m->reference : "");
  rc |= h5io_attr_str(root, "candidate", m->candidate ? m->candidate : "");
  rc |= h5io_attr_str(root, "precision", m->precision ? m->precision : "");
  rc |= h5io_attr_int(root, "n_ranks", m->n_ranks);
  rc |= h5io_attr_double(root, "threshold_tie_margin", m->thresholds->tie_margin);
  rc |= h5io_attr_double(root, "threshold_min_set_match", m->thresholds->min_set_match);
  rc |= h5io_attr_double(root, "threshold_max_weight_diff", m->thresholds->max_weight_diff);
  rc |= h5io_attr_double(root, "threshold_max_logits_rel", m->thresholds->max_logits_rel);
  rc |= h5io_attr_double(root, "threshold_max_hidden_rel", m->thresholds->max_hidden_rel);
  rc |= h5io_attr_config(root, c);
  return rc;
}

/* Per-layer summary arrays [L] under /summary. */
static int write_summary_arrays(hid_t f, const char *path, const parity_result *r, err *e) {
  hid_t g = h5io_group(f, path, "summary", e);
  if (g < 0) return -1;
  const int L = r->L;
  double *v = calloc((size_t)(L ? L : 1), sizeof *v);
  int rc = v ? 0 : err_set(e, EXIT_RUNTIME, "out of memory");
  static const char *const names[] = {"set_match_rate", "order_match_rate", "n_mismatch",
                                      "n_near_tie", "weight_diff_max", "weight_diff_mean",
                                      "router_logit_diff_max", "hidden_after_attn_err_max",
                                      "hidden_after_mlp_err_max", "margin_min",
                                      "mismatch_margin_max"};
  for (int k = 0; rc == 0 && k < 11; k++) {
    for (int l = 0; l < L; l++) {
      const parity_layer *p = &r->layers[l];
      const double vals[] = {p->set_match, p->order_match, p->n_mismatch, p->n_near_tie,
                             p->weight_max, p->weight_mean, p->router_max, p->attn_err,
                             p->mlp_err, p->margin_min, p->mismatch_margin_max};
      v[l] = vals[k];
    }
    hsize_t d = (hsize_t)L;
    rc = h5io_write(g, path, "/summary/", names[k], H5T_NATIVE_DOUBLE, 1, &d, v, e);
  }
  free(v);
  H5Gclose(g);
  return rc;
}

/* Every expert-set mismatch: layer, token, reference margin, near-tie, both expert lists. */
static int write_mismatches(hid_t f, const char *path, const parity_result *r, const trace *ref,
                            const trace *cand, err *e) {
  const int K = r->K;
  size_t n = 0;
  for (size_t i = 0; i < (size_t)r->L * r->T; i++) n += !r->set_match[i];
  hid_t g = h5io_group(f, path, "mismatches", e);
  if (g < 0) return -1;
  int32_t *lt = malloc((n ? n : 1) * 2 * sizeof *lt), *ex = malloc((n ? n : 1) * 2 * K * sizeof *ex);
  float *mg = malloc((n ? n : 1) * sizeof *mg);
  uint8_t *nt = malloc(n ? n : 1), *am = malloc(n ? n : 1);
  int rc = lt && ex && mg && nt && am ? 0 : err_set(e, EXIT_RUNTIME, "out of memory");
  size_t k = 0;
  for (int l = 0; rc == 0 && l < r->L; l++)
    for (int t = 0; t < r->T; t++) {
      const size_t i = (size_t)l * r->T + t;
      if (r->set_match[i]) continue;
      lt[2 * k] = l;
      lt[2 * k + 1] = t;
      mg[k] = r->margin[i];
      nt[k] = r->near_tie[i];
      am[k] = r->after_mismatch[i];
      memcpy(ex + 2 * k * K, ref->layers[l].topk_indices + (size_t)t * K, (size_t)K * sizeof *ex);
      memcpy(ex + (2 * k + 1) * K, cand->layers[l].topk_indices + (size_t)t * K, (size_t)K * sizeof *ex);
      k++;
    }
  hsize_t d2[2] = {(hsize_t)n, 2}, d1 = (hsize_t)n, d3[3] = {(hsize_t)n, 2, (hsize_t)K};
  if (rc == 0)
    rc = h5io_write(g, path, "/mismatches/", "layer_token", H5T_NATIVE_INT32, 2, d2, lt, e) ||
         h5io_write(g, path, "/mismatches/", "reference_margin", H5T_NATIVE_FLOAT, 1, &d1, mg, e) ||
         h5io_write(g, path, "/mismatches/", "near_tie", H5T_NATIVE_UINT8, 1, &d1, nt, e) ||
         h5io_write(g, path, "/mismatches/", "after_earlier_mismatch", H5T_NATIVE_UINT8, 1, &d1, am, e) ||
         h5io_write(g, path, "/mismatches/", "experts_reference_candidate", H5T_NATIVE_INT32, 3, d3, ex, e);
  free(lt); free(ex); free(mg); free(nt); free(am);
  H5Gclose(g);
  return rc ? -1 : 0;
}

static int write_report(hid_t f, const char *path, const parity_result *r, const parity_meta *m,
                        const trace *ref, const trace *cand, err *e) {
  if (write_meta(f, r, m) != 0)
    return err_set(e, EXIT_RUNTIME, "%s: HDF5 could not write the root attributes", path);
  hsize_t dT = (hsize_t)r->T;
  if (h5io_write(f, path, "/", "input_ids", H5T_NATIVE_INT32, 1, &dT, ref->input_ids, e) != 0)
    return -1;
  /* which candidate call computed each position, and which were compared */
  hid_t gp = h5io_group(f, path, "positions", e);
  if (gp < 0) return -1;
  int prc = h5io_write(gp, path, "/positions/", "compared", H5T_NATIVE_UINT8, 1, &dT, r->compared, e) ||
            (cand->call && h5io_write(gp, path, "/positions/", "call", H5T_NATIVE_INT32, 1, &dT, cand->call, e));
  H5Gclose(gp);
  if (prc) return -1;
  /* per layer and token */
  for (int l = 0; l < r->L; l++) {
    char name[48];
    snprintf(name, sizeof name, "layers/%d", l);
    hid_t g = h5io_group(f, path, name, e);
    if (g < 0) return -1;
    const size_t o = (size_t)l * r->T;
    const parity_layer *p = &r->layers[l];
    char gp[64];
    snprintf(gp, sizeof gp, "/%s/", name);
    int rc = h5io_attr_double(g, "set_match_rate", p->set_match) |
             h5io_attr_double(g, "order_match_rate", p->order_match) |
             h5io_attr_int(g, "n_mismatch", p->n_mismatch) |
             h5io_attr_int(g, "n_near_tie", p->n_near_tie);
    if (rc != 0) rc = err_set(e, EXIT_RUNTIME, "%s: HDF5 could not write attributes of %s", path, gp);
    if (rc == 0)
      rc = h5io_write(g, path, gp, "set_match", H5T_NATIVE_UINT8, 1, &dT, r->set_match + o, e) ||
           h5io_write(g, path, gp, "order_match", H5T_NATIVE_UINT8, 1, &dT, r->order_match + o, e) ||
           h5io_write(g, path, gp, "near_tie", H5T_NATIVE_UINT8, 1, &dT, r->near_tie + o, e) ||
           h5io_write(g, path, gp, "reference_margin", H5T_NATIVE_FLOAT, 1, &dT, r->margin + o, e) ||
           h5io_write(g, path, gp, "topk_weight_diff", H5T_NATIVE_FLOAT, 1, &dT, r->weight_diff + o, e) ||
           (r->has_router &&
            h5io_write(g, path, gp, "router_logit_diff", H5T_NATIVE_FLOAT, 1, &dT, r->router_diff + o, e)) ||
           (r->has_hidden &&
            (h5io_write(g, path, gp, "hidden_after_attn_err", H5T_NATIVE_FLOAT, 1, &dT, r->attn_err + o, e) ||
             h5io_write(g, path, gp, "hidden_after_mlp_err", H5T_NATIVE_FLOAT, 1, &dT, r->mlp_err + o, e)));
    H5Gclose(g);
    if (rc) return -1;
  }
  if (write_summary_arrays(f, path, r, e) != 0 || write_mismatches(f, path, r, ref, cand, e) != 0)
    return -1;
  hid_t g = h5io_group(f, path, "logits", e);
  if (g < 0) return -1;
  int rc = h5io_attr_double(g, "max_abs_diff", r->logits_max_abs) |
           h5io_attr_double(g, "max_rel_diff", r->logits_rel) |
           h5io_attr_double(g, "top1_agreement", r->top1_agree);
  if (rc != 0) rc = err_set(e, EXIT_RUNTIME, "%s: HDF5 could not write /logits attributes", path);
  if (rc == 0) rc = h5io_write(g, path, "/logits/", "top1_match", H5T_NATIVE_UINT8, 1, &dT, r->top1_match, e);
  H5Gclose(g);
  return rc;
}

int parity_report_stage(const char *path, const parity_result *r, const parity_meta *m,
                        const trace *ref, const trace *cand, atomic_out **staged, err *e) {
  h5io_file f;
  *staged = NULL;
  if (h5io_create(path, &f, e) != 0) return -1;
  if (write_report(f.file, path, r, m, ref, cand, e) != 0) {
    h5io_abort(&f);
    return -1;
  }
  return h5io_finish(&f, staged, e);
}

/* ---------------------------------------------------------------- text outputs */



/* The text, staged and sealed next to path (published by the caller). */
static int tx_stage(strbuf *t, const char *path, atomic_out **staged, err *e) {
  *staged = NULL;
  int rc = t->oom ? err_set(e, EXIT_RUNTIME, "%s: out of memory", path)
                  : atomic_stage_file(path, staged, e);
  if (rc == 0 && atomic_write(*staged, t->p ? t->p : "", t->n, e) != 0) {
    atomic_abort(*staged);
    rc = -1;
  } else if (rc == 0 && atomic_seal(*staged, e) != 0) {
    rc = -1; /* the failed seal removed it */
  }
  if (rc != 0) *staged = NULL;
  free(t->p);
  return rc;
}

static const char *fmt_g(double v, char *buf, size_t n) {
  if (isnan(v)) snprintf(buf, n, "n/a");
  else if (isinf(v)) snprintf(buf, n, "inf");
  else snprintf(buf, n, "%.3g", v);
  return buf;
}

/* ids[a..b) as one escaped line for a Markdown table: tokens decoded with TOK_TEXT_ESCAPE (no
 * newline, no control byte, invalid UTF-8 as \xNN), pipes and backticks escaped, cut at max
 * bytes; the token at `mark` (if in range) is wrapped in [[ ]]. "" without a tokenizer. */
static void text_of(const tok *tk, const int32_t *ids, int a, int b, int mark, size_t max,
                    strbuf *t) {
  if (!tk) return;
  for (int i = a; i < b; i++) {
    tok_buf piece = {0};
    err e = {0};
    if (tok_decode(tk, ids + i, 1, TOK_TEXT_ESCAPE, &piece, &e) != 0) {
      strbuf_printf(t, "<id %d>", ids[i]);
    } else {
      if (i == mark) strbuf_printf(t, "[[");
      for (size_t k = 0; k < piece.n && max > 0; k++, max--) {
        const char ch = piece.p[k];
        if (ch == '|' || ch == '`') strbuf_printf(t, "\\%c", ch);
        else strbuf_printf(t, "%c", ch);
      }
      if (i == mark) strbuf_printf(t, "]]");
    }
    tok_buf_free(&piece);
    if (max == 0) {
      strbuf_printf(t, "...");
      break;
    }
  }
}

int parity_summary_stage(const char *path, const char *svg_name, const parity_result *r,
                         const parity_meta *m, const trace *ref, const trace *cand,
                         atomic_out **staged, err *e) {
  strbuf t = {0};
  const parity_thresholds *th = m->thresholds;
  char a[32], b[32], c[32], d[32], f[32];
  strbuf_printf(&t, "# Routing parity: %s\n\n", r->pass ? "PASS" : "FAIL");
  if (!r->pass) strbuf_printf(&t, "**Failed checks:** %s\n\n", r->reasons);
  strbuf_printf(&t, "| | |\n| --- | --- |\n| checkpoint | `%s` |\n| reference | %s |\n| candidate | %s |\n",
     m->checkpoint, m->reference, m->candidate);
  strbuf_printf(&t, "| positions compared | %d of %d (%d layers, top-%d of %d experts) |\n", r->n_compared, r->T, r->L, r->K, r->E);
  if (m->tokenizer) {
    const int np = m->n_prompt > 0 && m->n_prompt <= r->T ? m->n_prompt : r->T;
    strbuf_printf(&t, "| prompt (%d tokens) | ", np);
    text_of(m->tokenizer, ref->input_ids, 0, np, -1, 600, &t);
    strbuf_printf(&t, " |\n");
    if (np < r->T) {
      strbuf_printf(&t, "| generated | ");
      text_of(m->tokenizer, ref->input_ids, np, r->T, -1, 600, &t);
      strbuf_printf(&t, " |\n");
    }
  }
  if (cand->call) {
    int n_pre = 0, n_steps = 0;
    for (int i = 0; i < r->T; i++) {
      n_pre += cand->call[i] == 0;
      if (cand->call[i] > n_steps) n_steps = cand->call[i];
    }
    strbuf_printf(&t, "| candidate calls | prefill of positions 0-%d, then %d decode step%s of one position each through the KV cache |\n",
       n_pre - 1, n_steps, n_steps == 1 ? "" : "s");
  }
  if (r->first_bad_position >= 0 || r->first_bad_call >= 0) {
    char call[48], where[64] = "the logits";
    parity_call_name(r->first_bad_call, call, sizeof call);
    if (r->first_bad_position_layer >= 0) snprintf(where, sizeof where, "layer %d", r->first_bad_position_layer);
    if (r->first_bad_position >= 0)
      strbuf_printf(&t, "| first failure | position %d%s%s%s, %s |\n", r->first_bad_position,
         call[0] ? " (" : "", call, call[0] ? ")" : "", where);
    else
      strbuf_printf(&t, "| first failure | %s, %s |\n", call, where);
  }
  char ties[96];
  if (th->tie_margin > 0)
    snprintf(ties, sizeof ties, "mismatches with a margin below %s", fmt_g(th->tie_margin, f, 32));
  else
    snprintf(ties, sizeof ties, "none (--tie-margin 0)");
  strbuf_printf(&t, "| thresholds | expert sets equal for >= %.4g %% of the positions; top-k weights <= %s; hidden states <= %s of max; logits <= %s of max |\n"
     "| near-ties | %s |\n\n",
     100 * th->min_set_match, fmt_g(th->max_weight_diff, a, 32), fmt_g(th->max_hidden_rel, d, 32),
     fmt_g(th->max_logits_rel, b, 32), ties);
  if (svg_name) strbuf_printf(&t, "![per-layer match rate and errors](%s)\n\n", svg_name);
  strbuf_printf(&t, "## Per layer\n\n");
  strbuf_printf(&t, "Match rates are over the %d positions. A mismatch is a token whose top-%d expert set differs; "
         "its reference margin (k-th minus (k+1)-th router logit) says how close the router was to a tie.\n\n",
     r->T, r->K);
  strbuf_printf(&t, "| layer | expert sets | expert order | mismatches | near-ties | max weight diff | mean weight diff | "
         "max router-logit diff | hidden err after attn | hidden err after MLP | smallest margin |\n");
  strbuf_printf(&t, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (int l = 0; l < r->L; l++) {
    const parity_layer *p = &r->layers[l];
    char g[32];
    strbuf_printf(&t, "| %d | %.1f %% | %.1f %% | %d | %d | %s | %s | %s | %s | %s | %s |\n", l,
       100 * p->set_match, 100 * p->order_match, p->n_mismatch, p->n_near_tie,
       fmt_g(p->weight_max, a, 32), fmt_g(p->weight_mean, b, 32), fmt_g(p->router_max, c, 32),
       fmt_g(p->attn_err, d, 32), fmt_g(p->mlp_err, f, 32), fmt_g(p->margin_min, g, 32));
  }
  strbuf_printf(&t, "\n## Final logits\n\nmax |difference| %s, relative to max |reference| %s; top-1 token agrees at %.1f %% of the positions.\n\n",
     fmt_g(r->logits_max_abs, a, 32), fmt_g(r->logits_rel, b, 32), 100 * r->top1_agree);
  int shown = 0, total = 0;
  for (size_t i = 0; i < (size_t)r->L * r->T; i++) total += !r->set_match[i];
  if (total) {
    strbuf_printf(&t, "## Expert-set mismatches (%d)\n\n| layer | position | call | reference experts | candidate experts | reference margin | |%s\n| ---: | ---: | --- | --- | --- | ---: | --- |%s\n",
       total, m->tokenizer ? " text around it |" : "", m->tokenizer ? " --- |" : "");
    for (int l = 0; l < r->L && shown < 50; l++)
      for (int tk = 0; tk < r->T && shown < 50; tk++) {
        const size_t i = (size_t)l * r->T + tk;
        if (r->set_match[i]) continue;
        char er[256] = "", ec[256] = "";
        for (int j = 0; j < r->K; j++) {
          size_t n1 = strlen(er), n2 = strlen(ec);
          snprintf(er + n1, sizeof er - n1, "%s%d", j ? "," : "", ref->layers[l].topk_indices[(size_t)tk * r->K + j]);
          snprintf(ec + n2, sizeof ec - n2, "%s%d", j ? "," : "", cand->layers[l].topk_indices[(size_t)tk * r->K + j]);
        }
        char call[48];
        parity_call_name(cand->call ? cand->call[tk] : -1, call, sizeof call);
        strbuf_printf(&t, "| %d | %d | %s | %s | %s | %s | %s%s |", l, tk, call, er, ec, fmt_g(r->margin[i], a, 32),
           r->near_tie[i] ? "near-tie" : "**failure**",
           r->after_mismatch[i] ? " (after an earlier mismatch at this position)" : "");
        if (m->tokenizer) {
          strbuf_printf(&t, " ");
          text_of(m->tokenizer, ref->input_ids, tk >= 4 ? tk - 4 : 0, tk + 3 < r->T ? tk + 3 : r->T, tk, 160, &t);
          strbuf_printf(&t, " |");
        }
        strbuf_printf(&t, "\n");
        shown++;
      }
    if (shown < total) strbuf_printf(&t, "\n(%d more in the HDF5 report, group /mismatches)\n", total - shown);
  }
  strbuf_printf(&t, "\nProduced by gptoss-mpi %s. Every per-token figure is in the HDF5 report (docs/parity-report.md).\n",
     GPTOSS_VERSION);
  return tx_stage(&t, path, staged, e);
}

/* Two panels: bars of the expert-set match rate per layer (0..100 %), and the hidden-state and
 * weight errors per layer on a log scale (1e-9 .. 1). */
int parity_chart_stage(const char *path, const parity_result *r, atomic_out **staged, err *e) {
  strbuf t = {0};
  const int L = r->L, W = 760, H = 520, x0 = 70, pw = W - x0 - 20, ph = 170;
  const int top1 = 40, top2 = 300;
  const double bw = L ? (double)pw / L : pw;
  strbuf_printf(&t, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
  strbuf_printf(&t, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
  strbuf_printf(&t, "<text x=\"%d\" y=\"22\" font-size=\"15\">Routing parity per layer: %s</text>\n", x0, r->pass ? "PASS" : "FAIL");
  strbuf_printf(&t, "<text x=\"%d\" y=\"%d\">expert-set match rate (%%): green = every position matches, "
         "red = failures, amber = near-ties</text>\n", x0, top1 + 8);
  for (int k = 0; k <= 4; k++) {
    double y = top1 + 15 + ph - ph * k / 4.0;
    strbuf_printf(&t, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%d</text>\n",
       x0, x0 + pw, y, y, x0 - 6, y + 4, 25 * k);
  }
  for (int l = 0; l < L; l++) {
    const parity_layer *p = &r->layers[l];
    double rate = r->T ? (double)(r->T - p->n_mismatch) / r->T : 1;
    double h = ph * rate, hm = ph * p->set_match;
    double x = x0 + l * bw + bw * 0.15, w = bw * 0.7;
    strbuf_printf(&t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>layer %d: %.1f %% (near-ties %d)</title></rect>\n",
       x, top1 + 15 + ph - h, w, h, rate >= 1 ? "#4a8" : "#c44", l, 100 * p->set_match, p->n_near_tie);
    if (hm < h)
      strbuf_printf(&t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#e9b949\"/>\n", x,
         top1 + 15 + ph - h, w, h - hm);
    if (L <= 40 || l % (L / 20 + 1) == 0) {
      strbuf_printf(&t, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", x + w / 2, top1 + ph + 30, l);
      strbuf_printf(&t, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", x + w / 2, top2 + ph + 30, l);
    }
  }
  strbuf_printf(&t, "<text x=\"%d\" y=\"%d\">errors (log scale): hidden after MLP (blue), after attention (grey), top-k weights (orange)</text>\n", x0, top2 + 8);
  for (int k = 0; k <= 9; k += 3) {
    double y = top2 + 15 + ph * k / 9.0;
    strbuf_printf(&t, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">1e-%d</text>\n",
       x0, x0 + pw, y, y, x0 - 6, y + 4, k);
  }
  const char *colors[3] = {"#36c", "#999", "#e80"};
  for (int s = 0; s < 3; s++) {
    strbuf_printf(&t, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", colors[s]);
    for (int l = 0; l < L; l++) {
      const parity_layer *p = &r->layers[l];
      double v = s == 0 ? p->mlp_err : s == 1 ? p->attn_err : p->weight_max;
      if (isnan(v)) continue;
      double lg = v > 0 ? -log10(v) : 9;
      if (lg < 0) lg = 0;
      if (lg > 9) lg = 9;
      strbuf_printf(&t, "%.1f,%.1f ", x0 + l * bw + bw / 2, top2 + 15 + ph * lg / 9.0);
    }
    strbuf_printf(&t, "\"/>\n");
  }
  strbuf_printf(&t, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">layer</text>\n", x0 + pw / 2, H - 8);
  strbuf_printf(&t, "</svg>\n");
  return tx_stage(&t, path, staged, e);
}
