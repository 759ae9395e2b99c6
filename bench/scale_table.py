#!/usr/bin/python3
"""scale_table.py WORK_DIR P...: Markdown tables of bench/bench_scale.sh's logs (docs/scaling.md):
per rank, measured against the plan (plan-*-P.json): export (bytes written, next to the forward's
mapped bytes; peak RSS and anonymous memory against the plan's export figures) and per-stage
parity (C forward: peak RSS, anonymous memory, checkpoint bytes touched; ONNX Runtime phase: peak
RSS of one layer) with phase times; each figure
against the plan made beforehand (routing spread evenly) and against the plan with the reference's
own routing (`parity -v` prints it: plan_apply_routing, the same as `plan --routing TRACE`)."""
import json
import os
import re
import sys

MiB = 1 << 20
work, ranks = sys.argv[1], [int(x) for x in sys.argv[2:]]


def ratio(a, b):
    return f"{a / b:.2f}" if b else "-"


for P in ranks:
    log = os.path.join(work, f"export-{P}.log")
    if os.path.exists(log):
        text = open(log).read()
        plan = {x["rank"]: x for x in json.load(open(os.path.join(work, f"plan-export-{P}.json")))["per_rank"]}
        print(f"\n#### export, {P} ranks\n")
        m = re.search(r"== summary: data ([\d.]+) MiB in ([\d.]+) s .*?total ([\d.]+) s", text)
        w = re.search(r"wall ([\d.]+) s", text)
        if m:
            print(f"data {float(m.group(1)):.0f} MiB in {float(m.group(2)):.1f} s, export total "
                  f"{float(m.group(3)):.1f} s, mpirun wall {w.group(1) if w else '?'} s\n")
        # what a rank writes is the export layout's share (the stage leader writes its stage's
        # attention and the head, every group its experts), not the forward pass's mapped bytes
        print("| rank | written MiB | forward's mapped MiB | peak RSS MiB | plan | ratio | anon MiB | plan | ratio |")
        print("| ---: " * 9 + "|")
        total = 0.0
        for r, wr, an, pk in re.findall(r"rank (\d+): wrote ([\d.]+) MiB; anonymous memory after writing "
                                        r"([\d.]+) MiB, peak RSS ([\d.]+) MiB", text):
            x = plan[int(r)]
            pm, pp, pa = x["mapped_bytes"] / MiB, x["export_peak_bytes"] / MiB, x["export_anon_bytes"] / MiB
            total += float(wr)
            print(f"| {r} | {float(wr):.0f} | {pm:.0f} | {float(pk):.1f} | {pp:.0f} | {ratio(float(pk), pp)} | "
                  f"{float(an):.1f} | {pa:.1f} | {ratio(float(an), pa)} |")
        print(f"\nwritten in all {total:.0f} MiB")
    log = os.path.join(work, f"parity-{P}.log")
    if os.path.exists(log):
        text = open(log).read()
        plan = {x["rank"]: x for x in json.load(open(os.path.join(work, f"plan-parity-{P}.json")))["per_rank"]}
        print(f"\n#### parity --per-stage, {P} ranks\n")
        w = re.search(r"wall ([\d.]+) s", text)
        s = re.search(r"per-stage: sub-models in ([\d.]+) s", text)
        pre = re.search(r"prefill: .* in ([\d.]+) s", text)
        print(f"mpirun wall {w.group(1) if w else '?'} s; sub-model phase {s.group(1) if s else '?'} s; "
              f"C prefill {pre.group(1) if pre else '?'} s\n")
        print("| rank | layers | fwd peak MiB | plan | routed plan | ratio (plan / routed) | fwd anon MiB | plan | ratio "
              "| touched MiB | plan resident | routed resident | ratio (plan / routed) | export s | ORT s "
              "| ORT peak MiB | plan | routed plan | ratio (plan / routed) |")
        print("| ---: " * 19 + "|")
        num = r"([\d.]+)"
        pat = re.compile(rf"rank (\d+): forward peak RSS {num} MiB \(plan [\d.]+ MiB(?:, with this routing {num} MiB)?\), "
                         rf"anonymous {num} MiB(?: \(plan {num} MiB\))?, checkpoint touched {num} MiB(?: \(with this routing: resident {num} "
                         rf"MiB\))?; (\d+) layer sub-models?: export {num} s, ONNX Runtime {num} s, checkpoint "
                         rf"touched [\d.]+ MiB, peak RSS {num} MiB \(plan [\d.]+ MiB(?:, with this routing {num} MiB)?\)")
        worst = [0.0, 0.0]
        for m in pat.finditer(text):
            r = int(m.group(1))
            g = [float(x) if x is not None else None for x in m.groups()[1:]]
            fp, rfp, an, pan, tc, rres, n, te, to, op, rop = g
            pr, ps = plan[r], plan[r]["per_stage"]
            pf, po, res = ps["forward_bytes"] / MiB, ps["ort_bytes"] / MiB, pr["resident_bytes"] / MiB

            def two(a, b, rb):
                return f"{ratio(a, b)} / {ratio(a, rb) if rb else '-'}"
            # a rank's peak is the larger of its two phases (the ONNX Runtime one only with a layer)
            peak = max(fp, op if n else 0)
            pk, rpk = max(pf, po if n else 0), max(rfp or 0, (rop or 0) if n else 0)
            worst[0] = max(worst[0], peak / pk)
            if rpk:
                worst[1] = max(worst[1], peak / rpk)
            print(f"| {r} | {int(n)} | {fp:.0f} | {pf:.0f} | {rfp or 0:.0f} | {two(fp, pf, rfp)} | {an:.1f} | {pan or 0:.1f} | {ratio(an, pan or 0)} | {tc:.0f} | "
                  f"{res:.0f} | {rres or 0:.0f} | {two(tc, res, rres)} | {te:.1f} | {to:.1f} | "
                  + (f"{op:.0f} | {po:.0f} | {rop or 0:.0f} | {two(op, po, rop)} |" if n else "- | - | - | - |"))
        print(f"\nlargest measured peak / planned peak of a rank: {worst[0]:.2f} (plan), {worst[1]:.2f} (with the routing)")
