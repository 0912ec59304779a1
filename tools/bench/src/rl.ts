import { existsSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { adamOptimizer } from '@tunekit/graph';
import { CausalLM, createRng, initModel, LoraAdapter } from '@tunekit/models';
import { grpoObjective, PolicySampler, RolloutFeeds, RolloutRows, RowScorer, type RolloutSettings } from '@tunekit/plugin-rl';
import { GradProgram, UpdateProgram } from '@tunekit/trainer';
import { smollmModelDir } from './smollm';
import { peakRssMb, row, threads } from './measure';

/**
 * Online RL throughput (GRPO's step, LoRA q_proj,v_proj r 8): rollout tokens/s (completion tokens sampled per second
 * by the policy's cached decoder, adapter values fed), reference tokens/s (prompt + completion tokens scored per
 * second by the adapter-free forward) and update tokens/s (prompt + completion tokens per second through forward,
 * backward and the AdamW update). No PyTorch reference exists for these yet: the figures stand alone.
 *
 *   node dist/rl.js               the tiny shape, then the SmolLM-135M shape, each in its own process
 *   node dist/rl.js tiny|smollm   one shape in this process
 */
const SHAPES = {
  tiny: { prompts: 8, promptLength: 64, newTokens: 64 },
  smollm: { prompts: 4, promptLength: 128, newTokens: 32 },
} as const;
type ShapeName = keyof typeof SHAPES;
const RUNS = 3;

function tinyModelDir(): string {
  const dir = join(tmpdir(), 'tunekit-bench-tiny');
  if (!existsSync(join(dir, 'model.safetensors'))) {
    initModel(dir, { arch: 'llama', hidden: 256, layers: 4, heads: 4, kvHeads: 4, intermediate: 688, vocab: 8192, tieWordEmbeddings: false, ropeTheta: 10000, seed: 1 });
  }
  return dir;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function measure(name: ShapeName): Promise<void> {
  const shape = SHAPES[name];
  const model = CausalLM.load(name === 'tiny' ? tinyModelDir() : smollmModelDir());
  LoraAdapter.init(model, { r: 8, alpha: 16, useRslora: false, targetModules: ['q_proj', 'v_proj'] }).apply(model, { trainable: true });
  const session = { intraOpNumThreads: threads() };
  const vocab = model.config.vocabSize;
  const prompts = Array.from({ length: shape.prompts }, (_, b) => Array.from({ length: shape.promptLength }, (_, t) => (b * 131 + t * 7919 + 17) % vocab));
  // No eos: every completion runs to the budget, so each run samples the same number of tokens.
  const settings: RolloutSettings = { maxNewTokens: shape.newTokens, temperature: 1, topP: 1, topK: 0, repetitionPenalty: 1, eosTokenIds: [], logitScale: 1 };

  const feeds = new RolloutFeeds();
  const grads = await GradProgram.create(model, grpoObjective({ epsilon: 0.2, beta: 0.04, lossType: 'grpo', rollout: settings }, feeds), { session });
  const names = grads.parameters.map((p) => p.name);
  const update = await UpdateProgram.create(grads.parameters, adamOptimizer({ decoupled: true }), [{ names, weightDecay: 0, lrScale: 1 }], { maxGradNorm: 1, session });
  const sampler = await PolicySampler.create(model, { session, padTokenId: 0 });
  const reference = await RowScorer.create(model, { session, disableAdapters: true, logps: { logitScale: 1 } });
  let values = new Map(names.map((n) => [n, grads.initial(n)]));
  let state = update.initialState();

  const times: { rollout: number; reference: number; update: number }[] = [];
  for (let run = 0; run < RUNS + 1; run++) {
    const t0 = performance.now();
    const completions = await sampler.sample(prompts, values, settings, createRng(run));
    const t1 = performance.now();
    const rows = RolloutRows.of(completions, 0);
    const ref = await reference.run(rows);
    const t2 = performance.now();
    feeds.set(rows.batch, {
      response_mask: rows.maskFeed(),
      old_logps: rows.spread(completions.map((c) => c.logps)),
      ref_logps: { dtype: 'float32', dims: [rows.rows, rows.width], data: ref.logps! },
      advantages: { dtype: 'float32', dims: [rows.rows], data: Float32Array.from(completions, (_, i) => (i % 2 ? -1 : 1)) },
    });
    const result = await grads.run(rows.batch, 1, values);
    const next = await update.run(values, result.grads, state, 1e-4, run + 1);
    values = next.values;
    state = next.state;
    const t3 = performance.now();
    if (run > 0) times.push({ rollout: t1 - t0, reference: t2 - t1, update: t3 - t2 });
  }
  const generated = shape.prompts * shape.newTokens;
  const total = shape.prompts * (shape.promptLength + shape.newTokens);
  const ms = { rollout: median(times.map((t) => t.rollout)), reference: median(times.map((t) => t.reference)), update: median(times.map((t) => t.update)) };
  console.log(
    row([
      name === 'tiny' ? 'tiny (hidden 256, 4 layers)' : 'SmolLM-135M shape',
      `${shape.prompts} x (${shape.promptLength} + ${shape.newTokens})`,
      ((generated / ms.rollout) * 1000).toFixed(1),
      ((total / ms.reference) * 1000).toFixed(1),
      ((total / ms.update) * 1000).toFixed(1),
      ms.rollout.toFixed(0),
      ms.reference.toFixed(0),
      ms.update.toFixed(0),
      peakRssMb().toFixed(0),
    ]),
  );
  await sampler.release();
  await reference.release();
  await grads.release();
  await update.release();
}

async function main(): Promise<void> {
  const only = process.argv[2] as ShapeName | undefined;
  if (only) {
    if (!(only in SHAPES)) throw new Error(`unknown shape '${only}': tiny or smollm`);
    await measure(only);
    return;
  }
  console.log(`GRPO step, LoRA q_proj,v_proj r 8, random weights, fp32, ${threads()} threads, ${cpus()[0]?.model}\n`);
  console.log(row(['shape', 'prompts x (prompt + new)', 'rollout tokens/s', 'reference tokens/s', 'update tokens/s', 'rollout ms', 'reference ms', 'update ms', 'peak RSS MB']));
  console.log(row(['---', '---', '---', '---', '---', '---', '---', '---', '---']));
  const { spawnSync } = await import('node:child_process');
  for (const name of Object.keys(SHAPES)) {
    const result = spawnSync(process.execPath, [__filename, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    process.stdout.write(result.stdout);
  }
}

void main();
