import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { collate, type SupervisedExample } from '@tunekit/data';
import { CausalLM, initModel, SafetensorsWeights } from '@tunekit/models';
import { LR_SCHEDULES } from '@tunekit/plugin-lr-schedulers';
import { readTrainerLog, Trainer, trainingArgumentsFrom } from '@tunekit/trainer';
import { maskedCount, maskIndices, periodOf, ratioOptimizer } from '../src';

describe("BAdam's ratio-mode masks", () => {
  it('take int(numel * ratio) adjacent entries from an offset that moves by that much each period, wrapping', () => {
    const adjacent = { ratio: 0.25, maskMode: 'adjacent', seed: 1 } as const;
    expect(maskedCount(20, 0.25)).toBe(5);
    expect(maskIndices([4, 5], adjacent, 0)).toEqual([0, 1, 2, 3, 4]);
    expect(maskIndices([4, 5], adjacent, 3)).toEqual([15, 16, 17, 18, 19]);
    expect(maskIndices([4, 5], adjacent, 4)).toEqual([0, 1, 2, 3, 4]);
    expect(maskIndices([4, 5], { ...adjacent, ratio: 0.3 }, 3)).toEqual([0, 1, 2, 3, 18, 19]);
  });

  it('scatter over a permutation drawn once per shape: periods take disjoint windows of it', () => {
    const scatter = { ratio: 0.25, maskMode: 'scatter', seed: 7 } as const;
    const periods = [0, 1, 2, 3].map((p) => maskIndices([4, 5], scatter, p));
    expect(periods.flat().sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(periods[0]).not.toEqual([0, 1, 2, 3, 4]);
    expect(maskIndices([4, 5], scatter, 1)).toEqual(periods[1]);
    expect(maskIndices([5, 4], scatter, 0)).not.toEqual(periods[0]);
  });

  it('restart the state every interval steps', () => {
    expect([1, 2, 3, 4, 6, 7].map((s) => periodOf(s, 3))).toEqual([
      { period: 0, since: 1 }, { period: 0, since: 1 }, { period: 0, since: 1 }, { period: 1, since: 4 }, { period: 1, since: 4 }, { period: 2, since: 7 },
    ]);
    expect(periodOf(99, -1)).toEqual({ period: 0, since: 1 });
  });
});

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-badam-ratio-'));
const modelDir = path.join(work, 'model');
initModel(modelDir, { arch: 'llama', hidden: 32, layers: 2, seed: 8, merges: 20 });
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function dataset(): SupervisedExample[] {
  let state = 4;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
  return Array.from({ length: 12 }, () => {
    const ids = Int32Array.from({ length: 6 + (next() % 8) }, () => 3 + (next() % 250));
    return { input_ids: ids, labels: ids };
  });
}

const LR = 1e-3;
async function train(name: string, extra: Record<string, unknown>, stopAfterSteps?: number) {
  const outputDir = path.join(work, name);
  const config = { output_dir: outputDir, do_train: true, learning_rate: LR, weight_decay: 0.1, max_grad_norm: 0, logging_steps: 1, save_steps: 2, seed: 3,
    per_device_train_batch_size: 4, lr_scheduler_type: 'constant', ...extra };
  const model = CausalLM.load(modelDir);
  model.setAllTrainable(true);
  const optimizer = ratioOptimizer({ ratio: 0.25, maskMode: 'adjacent', switchInterval: 2, seed: 3, betas: [0.9, 0.999], eps: 1e-8 });
  const trainer = new Trainer({
    model, modelDir, tuner: { addsAdapters: false, apply: () => {} }, args: trainingArgumentsFrom(config),
    dataCollator: (examples: readonly SupervisedExample[]) => collate('sft', examples, { padTokenId: 0 }),
    trainDataset: dataset(), optimizers: { optimizer, scheduler: LR_SCHEDULES.constant }, progressStream: { write: () => true }, stopAfterSteps,
  });
  await trainer.train();
  return outputDir;
}

const base = SafetensorsWeights.open(modelDir);
/** The flat indices of each tensor that changed against the base model. */
function changed(dir: string): Map<string, number[]> {
  const w = SafetensorsWeights.fromFiles([path.join(dir, 'model.safetensors')]);
  return new Map(w.names.map((name) => {
    const before = base.read(name);
    const after = w.read(name);
    return [name, [...after.keys()].filter((i) => after[i] !== before[i])];
  }));
}

describe('BAdam ratio mode in the trainer', () => {
  it('updates only the masked entries of each weight (none of the embeddings), by Adam steps without weight decay', async () => {
    const one = changed(await train('one', { max_steps: 1 }));
    expect(one.get('model.embed_tokens.weight')).toEqual([]);
    const w = SafetensorsWeights.fromFiles([path.join(work, 'one', 'model.safetensors')]);
    for (const [name, indices] of one) {
      if (name.includes('embed_tokens') || name.startsWith('lm_head')) { expect(indices).toEqual([]); continue; }
      const k = maskedCount(base.read(name).length, 0.25);
      expect(indices.length).toBeGreaterThan(0);
      expect(indices.every((i) => i < k)).toBe(true); // period 0: the first k entries
      // Adam's first step moves an entry by lr * |g| / (|g| + eps): at most lr, and lr unless g is tiny. Weight decay
      // (0.1, not applied in ratio mode) would add lr * 0.1 * |w|, 1e-4 on the norm weights (1).
      const moves = indices.map((i) => Math.abs(w.read(name)[i] - base.read(name)[i]));
      expect(Math.max(...moves)).toBeLessThan(LR + 1e-6);
      expect(moves.sort((a, b) => a - b)[Math.floor(moves.length / 2)]).toBeGreaterThan(0.98 * LR);
    }
    // Step 3 starts period 1: the next k entries move too.
    const three = changed(await train('three', { max_steps: 3 }));
    const q = 'model.layers.0.self_attn.q_proj.weight';
    const k = maskedCount(32 * 32, 0.25);
    expect(three.get(q)!.some((i) => i >= k && i < 2 * k)).toBe(true);
    expect(three.get(q)!.every((i) => i < 2 * k)).toBe(true);
  });

  it('resumes after a crash on the same loss curve (masks and state from the step)', async () => {
    await train('whole', { max_steps: 5 });
    await train('crashed', { max_steps: 5 }, 3); // checkpoint 2, then period 1 starts fresh at step 3
    await train('crashed', { max_steps: 5, resume_from_checkpoint: true });
    const log = (name: string) => readTrainerLog(path.join(work, name, 'trainer_log.jsonl')).map((line) => [line.current_steps, line.loss]);
    expect(log('crashed')).toEqual(log('whole'));
  });
});
