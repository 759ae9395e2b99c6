#!/usr/bin/python3
"""scale_table.py WORK_DIR P...: Markdown tables of bench/bench_scale.sh's logs (docs/scaling.md):
per rank, measured against the plan (plan-*-P.json): export (bytes written vs the plan's mapped
bytes; peak RSS, anonymous memory) and per-stage parity (C forward: peak RSS, anonymous memory,
checkpoint bytes touched; ONNX Runtime phase: peak RSS of one layer) with phase times."""
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
        print("| rank | written MiB | plan mapped MiB | ratio | peak RSS MiB | anon MiB |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: |")
        for r, wr, an, pk in re.findall(r"rank (\d+): wrote ([\d.]+) MiB; anonymous memory after writing "
                                        r"([\d.]+) MiB, peak RSS ([\d.]+) MiB", text):
            pm = plan[int(r)]["mapped_bytes"] / MiB
            print(f"| {r} | {float(wr):.0f} | {pm:.0f} | {ratio(float(wr), pm)} | {float(pk):.1f} | {float(an):.1f} |")
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
        print("| rank | layers | fwd peak MiB | plan | ratio | fwd anon MiB | touched MiB | plan resident | ratio "
              "| export s | ORT s | ORT peak MiB | plan | ratio |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        pat = re.compile(r"rank (\d+): forward peak RSS ([\d.]+) MiB, anonymous ([\d.]+) MiB, checkpoint touched "
                         r"([\d.]+) MiB \(plan [\d.]+ MiB\); (\d+) layer sub-models?: export ([\d.]+) s, ONNX "
                         r"Runtime ([\d.]+) s, checkpoint touched [\d.]+ MiB, peak RSS ([\d.]+) MiB")
        for m in pat.finditer(text):
            r = int(m.group(1))
            fp, an, tc, n, te, to, op = (float(m.group(i)) for i in (2, 3, 4, 5, 6, 7, 8))
            pr, ps = plan[r], plan[r]["per_stage"]
            pf, po, res = ps["forward_bytes"] / MiB, ps["ort_bytes"] / MiB, pr["resident_bytes"] / MiB
            print(f"| {r} | {int(n)} | {fp:.0f} | {pf:.0f} | {ratio(fp, pf)} | {an:.1f} | {tc:.0f} | {res:.0f} | "
                  f"{ratio(tc, res)} | {te:.1f} | {to:.1f} | {op:.0f} | {po:.0f} | "
                  f"{ratio(op, po) if n else '-'} |")
