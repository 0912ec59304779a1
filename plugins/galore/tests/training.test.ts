import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { collate, type SupervisedExample } from '@tunekit/data';
import { CausalLM, initModel, SafetensorsWeights } from '@tunekit/models';
import { LR_SCHEDULES } from '@tunekit/plugin-lr-schedulers';
import { readTrainerLog, Trainer, trainingArgumentsFrom } from '@tunekit/trainer';
import { galoreAdamW } from '../src';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-galore-'));
const modelDir = path.join(work, 'model');
initModel(modelDir, { arch: 'llama', hidden: 32, layers: 2, seed: 6, merges: 20 });
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function dataset(): SupervisedExample[] {
  let state = 5;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
  return Array.from({ length: 12 }, () => {
    const ids = Int32Array.from({ length: 6 + (next() % 8) }, () => 3 + (next() % 250));
    return { input_ids: ids, labels: ids };
  });
}

async function train(name: string, extra: Record<string, unknown>, stopAfterSteps?: number) {
  const outputDir = path.join(work, name);
  const config = { output_dir: outputDir, do_train: true, learning_rate: 2e-3, weight_decay: 0.01, max_grad_norm: 1, logging_steps: 1, save_steps: 2,
    seed: 3, per_device_train_batch_size: 4, max_steps: 6, ...extra };
  const model = CausalLM.load(modelDir);
  model.setAllTrainable(true);
  const lines: string[] = [];
  const optimizer = galoreAdamW({ targets: ['all'], rank: 4, updateInterval: 3, scale: 0.25, projType: 'std', betas: [0.9, 0.999], eps: 1e-8 });
  const trainer = new Trainer({
    model, modelDir, tuner: { addsAdapters: false, apply: () => {} }, args: trainingArgumentsFrom(config),
    dataCollator: (examples: readonly SupervisedExample[]) => collate('sft', examples, { padTokenId: 0 }),
    trainDataset: dataset(), optimizers: { optimizer, scheduler: LR_SCHEDULES.linear }, progressStream: { write: () => true },
    log: (line) => lines.push(line), stopAfterSteps,
  });
  await trainer.train();
  return { lines, outputDir };
}

const weights = (file: string) => {
  const w = SafetensorsWeights.fromFiles([file]);
  return new Map(w.names.map((name) => [name, w.read(name)]));
};

describe('GaLore in the trainer', () => {
  it('keeps low-rank moments and the projectors as optimizer state, far smaller than AdamW', async () => {
    const run = await train('state', { max_steps: 2 });
    const state = weights(path.join(run.outputDir, 'checkpoint-2', 'optimizer.safetensors'));
    // q_proj is 32 x 32 with rank 4: moments 32 x 4 and a 4 x 32 projector.
    expect(state.get('model.layers.0.self_attn.q_proj.weight.exp_avg')!.length).toBe(32 * 4);
    expect(state.get('model.layers.0.self_attn.q_proj.weight.projector_right')!.length).toBe(4 * 32);
    expect(state.has('model.layers.0.self_attn.q_proj.weight.projector_left')).toBe(false);
    // Vectors and the embedding keep full AdamW moments.
    expect(state.get('model.norm.weight.exp_avg')!.length).toBe(32);
    expect(state.has('model.embed_tokens.weight.exp_avg')).toBe(true);
    expect(run.lines.find((l) => l.startsWith('optimizer state:'))).toMatch(/^optimizer state: \d+ tensors, [\d.]+ MiB$/);
  });

  it('resumes after a crash on the same loss curve, projectors included', async () => {
    await train('whole', {});
    await train('crashed', {}, 3); // the last checkpoint is step 2: step 3 uses the saved projectors (recomputed at 1 and 4)
    await train('crashed', { resume_from_checkpoint: true });
    const log = (name: string) => readTrainerLog(path.join(work, name, 'trainer_log.jsonl')).map((line) => [line.current_steps, line.loss]);
    expect(log('crashed')).toEqual(log('whole'));
    const a = weights(path.join(work, 'whole', 'model.safetensors'));
    const b = weights(path.join(work, 'crashed', 'model.safetensors'));
    for (const [name, value] of a) {
      const other = b.get(name)!;
      for (let i = 0; i < value.length; i++) expect(Math.abs(value[i] - other[i])).toBeLessThan(1e-6);
    }
  });
});
