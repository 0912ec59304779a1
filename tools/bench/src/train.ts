import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import type { Batch } from '@tunekit/data';
import { adamOptimizer } from '@tunekit/graph';
import { CausalLM, LoraAdapter } from '@tunekit/models';
import { causalLmObjective, GradProgram, UpdateProgram } from '@tunekit/trainer';
import { smollmModelDir } from './smollm';
import { peakRssMb, row, threads } from './measure';

/**
 * One training step (forward + loss + backward + AdamW) on the SmolLM-135M shape, batch 4 x 512, LoRA (q_proj,
 * v_proj, r 8, alpha 16) and full fine-tuning, with the trainer's own programs, beside PyTorch's figures in
 * ../shared/bench/reference.md (same setup: fp32, AdamW lr 1e-4, no clipping, no schedule, labels = inputs, no
 * gradient checkpointing). Median of 3 steps after 2 warm-up steps; each mode in its own process.
 */
const [batch, seq] = [4, 512];
const REFERENCE = {
  lora: { tokensPerSecond: 107.6, stepMs: 19032, fwdBwdMs: 8075 + 11207, optimizerMs: 19, peakMb: 7949 },
  full: { tokensPerSecond: 84.3, stepMs: 24304, fwdBwdMs: 8377 + 15686, optimizerMs: 546, peakMb: 9366 },
};

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function measure(mode: 'lora' | 'full', dir: string): Promise<void> {
  const model = CausalLM.load(dir);
  if (mode === 'lora') LoraAdapter.init(model, { r: 8, alpha: 16, useRslora: false, targetModules: ['q_proj', 'v_proj'] }).apply(model, { trainable: true });
  else model.setAllTrainable(true);
  const session = { intraOpNumThreads: threads() };
  const grads = await GradProgram.create(model, causalLmObjective({ labelSmoothing: 0 }), { session });
  const names = grads.parameters.map((p) => p.name);
  const update = await UpdateProgram.create(grads.parameters, adamOptimizer({ decoupled: true }), [{ names, weightDecay: 0.01, lrScale: 1 }], { maxGradNorm: 0, session });
  const values = new Map(names.map((name) => [name, grads.initial(name)]));
  const state = update.initialState();
  const ids = Int32Array.from({ length: batch * seq }, (_, i) => (i * 7919) % 49152);
  const data: Batch = {
    input_ids: { dtype: 'int32', dims: [batch, seq], data: ids },
    labels: { dtype: 'int32', dims: [batch, seq], data: ids },
    attention_mask: { dtype: 'int32', dims: [batch, seq], data: new Int32Array(batch * seq).fill(1) },
  };
  const counted = batch * (seq - 1);
  const times: { fwdBwd: number; optimizer: number }[] = [];
  for (let step = 1; step <= 5; step++) {
    const t0 = performance.now();
    const result = await grads.run(data, 1 / counted, values);
    const t1 = performance.now();
    // As the trainer does: in place, chunk by chunk.
    await update.step(values, result.grads, state, 1e-4, step);
    const t2 = performance.now();
    if (step > 2) times.push({ fwdBwd: t1 - t0, optimizer: t2 - t1 });
  }
  const fwdBwd = median(times.map((t) => t.fwdBwd));
  const optimizer = median(times.map((t) => t.optimizer));
  console.log(JSON.stringify({ mode, fwdBwd, optimizer, stepMs: median(times.map((t) => t.fwdBwd + t.optimizer)), peakMb: peakRssMb() }));
}

function main(): void {
  const [mode, dir] = process.argv.slice(2);
  if (mode === 'lora' || mode === 'full') {
    void measure(mode, dir);
    return;
  }
  const modelDir = smollmModelDir();
  console.log(`Training step, SmolLM-135M shape (random weights), batch ${batch} x ${seq}, fp32, ${threads()} threads, ${cpus()[0]?.model}\n`);
  console.log(row(['mode', 'tokens/s', 'PyTorch tokens/s', 'ratio', 'step ms', 'fwd+bwd ms', 'optimizer ms', 'peak RSS MB', 'PyTorch peak RSS MB']));
  console.log(row(['---', '---', '---', '---', '---', '---', '---', '---', '---']));
  for (const each of (process.env.TUNEKIT_BENCH_MODES ?? 'lora,full').split(',') as ('lora' | 'full')[]) {
    const child = spawnSync(process.execPath, [__filename, each, modelDir], { encoding: 'utf8', maxBuffer: 1 << 24 });
    if (child.status !== 0) throw new Error(`${each} run failed: ${child.stderr}`);
    const r = JSON.parse(child.stdout.trim().split('\n').pop()!) as { fwdBwd: number; optimizer: number; stepMs: number; peakMb: number };
    const ref = REFERENCE[each];
    const tokensPerSecond = (batch * seq * 1000) / r.stepMs;
    console.log(row([each === 'lora' ? 'LoRA q_proj,v_proj r 8' : 'full', tokensPerSecond.toFixed(1), ref.tokensPerSecond, (tokensPerSecond / ref.tokensPerSecond).toFixed(2), r.stepMs.toFixed(0), r.fwdBwd.toFixed(0), r.optimizer.toFixed(0), r.peakMb.toFixed(0), ref.peakMb]));
  }
}

main();
