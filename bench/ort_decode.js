// ort_decode.js: an exported decoder (gptoss-mpi export) in ONNX Runtime through onnxruntime-node,
// driven like a generating client, for bench_decode.sh. One mode per process, so that VmHWM is
// the peak of that mode alone. Prints one line of "key value" pairs.
//
//   node ort_decode.js ORT_NODE_DIR MODEL.onnx IDS_FILE THREADS cache P STEPS
//       a prefill of the first P ids with an empty cache, then STEPS greedy decode steps of one
//       token each (the argmax of the last logits), feeding present.* back as past_key_values.*;
//       prints the STEPS + 1 generated ids too (to compare with `gptoss-mpi run`); with a last
//       argument `warm`, a first prefill of the same P ids is timed on its own (first_prefill*:
//       what the session's first call costs: ORT prepacks weights and grows its arena there)
//       before the measured one
//   node ort_decode.js ORT_NODE_DIR MODEL.onnx IDS_FILE THREADS reprefill P N
//       the old way: for k = 1..N a full prefill of the first P + k ids with an empty cache
//       (what a model without a cache needs for every new token)
const fs = require('fs');
const [ortDir, model, idsFile, threads, mode, P0, N0, warm] = process.argv.slice(2);
const ort = require(require('path').resolve(ortDir));
const P = Number(P0), N = Number(N0);

function status(k) {
  const s = fs.readFileSync('/proc/self/status', 'utf8');
  return +(s.match(new RegExp(k + ':\\s+(\\d+)'))[1]) / 1024;
}
const now = () => Number(process.hrtime.bigint()) / 1e9;
const i64 = (a, dims) => new ort.Tensor('int64', BigInt64Array.from(a.map(BigInt)), dims);

function emptyPast(s) {
  const p = {};
  for (const m of s.inputMetadata)
    if (m.name.startsWith('past_key_values.')) {
      const dims = m.shape.map((d) => (typeof d === 'number' ? d : d === 'batch_size' ? 1 : 0));
      p[m.name] = new ort.Tensor('float32', new Float32Array(0), dims);
    }
  return p;
}

async function call(s, ids, a, b, past) {
  const feeds = Object.assign({}, past);
  feeds.input_ids = i64(ids.slice(a, b), [1, b - a]);
  feeds.attention_mask = i64(new Array(b).fill(1), [1, b]);
  feeds.position_ids = i64([...Array(b - a).keys()].map((i) => a + i), [1, b - a]);
  const out = await s.run(feeds);
  const next = {};
  for (const k in out) if (k.startsWith('present.')) next[k.replace('present', 'past_key_values')] = out[k];
  const V = out.logits.dims[2], last = out.logits.data.subarray((b - a - 1) * V, (b - a) * V);
  let best = 0;
  for (let v = 1; v < V; v++) if (last[v] > last[best]) best = v;
  next.greedy = best;
  return next;
}

const median = (v) => { const s = [...v].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
// process CPU time (user + system, all threads): the amount of work, whatever else runs
const cpu = () => { const c = process.cpuUsage(); return (c.user + c.system) / 1e6; };

(async () => {
  const ids = fs.readFileSync(idsFile, 'utf8').trim().split(/[,\s]+/).map(Number);
  let t = now();
  const s = await ort.InferenceSession.create(model, {
    intraOpNumThreads: Number(threads), interOpNumThreads: 1, graphOptimizationLevel: 'all'});
  const create = now() - t;
  const c0 = cpu();
  const times = [];
  let line = `create_s ${create.toFixed(2)}`, tail = '';
  if (mode === 'cache') {
    if (warm === 'warm') {
      t = now();
      const u0 = cpu();
      await call(s, ids.slice(0, P), 0, P, emptyPast(s));
      line += ` first_prefill${P}_s ${(now() - t).toFixed(2)} (cpu ${(cpu() - u0).toFixed(1)})`;
    }
    t = now();
    let u = cpu();
    const seq = ids.slice(0, P), gen = [], cpus = [];
    let past = await call(s, seq, 0, P, emptyPast(s));
    const prefill = now() - t, prefill_cpu = cpu() - u;
    for (let k = 0; k < N; k++) {
      gen.push(past.greedy);
      seq.push(past.greedy);
      delete past.greedy;
      t = now();
      u = cpu();
      past = await call(s, seq, P + k, P + k + 1, past);
      times.push(now() - t);
      cpus.push(cpu() - u);
    }
    gen.push(past.greedy);
    line += ` prefill${P}_s ${prefill.toFixed(2)} (cpu ${prefill_cpu.toFixed(1)}) steps ${N}` +
            ` step_median_s ${median(times).toFixed(3)} step_min_s ${Math.min(...times).toFixed(3)}` +
            ` step_max_s ${Math.max(...times).toFixed(3)} step_cpu_median_s ${median(cpus).toFixed(3)}` +
            ` cache_len ${past['past_key_values.0.key'].dims[2]}`;
    tail = ` ids ${gen.join(',')}`;
  } else {
    const cpus = [];
    for (let k = 1; k <= N; k++) {
      t = now();
      const u = cpu();
      await call(s, ids, 0, P + k, emptyPast(s));
      times.push(now() - t);
      cpus.push(cpu() - u);
    }
    line += ` reprefill_from ${P + 1} n ${N} per_token_median_s ${median(times).toFixed(2)}` +
            ` min_s ${Math.min(...times).toFixed(2)} max_s ${Math.max(...times).toFixed(2)}` +
            ` per_token_cpu_median_s ${median(cpus).toFixed(2)}`;
  }
  line += ` cpu_s ${(cpu() - c0).toFixed(1)} VmHWM_MiB ${status('VmHWM').toFixed(0)}` +
          ` RssAnon_MiB ${status('RssAnon').toFixed(0)} RssFile_MiB ${status('RssFile').toFixed(0)}`;
  console.log(line + tail);
})().catch((e) => { console.error(e.message || e); process.exit(1); });
