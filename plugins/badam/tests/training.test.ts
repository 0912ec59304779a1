import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { collate, type SupervisedExample } from '@tunekit/data';
import { adamOptimizer } from '@tunekit/graph';
import { CausalLM, initModel, SafetensorsWeights } from '@tunekit/models';
import { LR_SCHEDULES } from '@tunekit/plugin-lr-schedulers';
import { readTrainerLog, Trainer, trainingArgumentsFrom } from '@tunekit/trainer';
import { blockOptimizer, type BlockScheduleSettings } from '../src';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-badam-'));
const modelDir = path.join(work, 'model');
initModel(modelDir, { arch: 'llama', hidden: 32, layers: 3, seed: 4, merges: 20 });
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function dataset(): SupervisedExample[] {
  let state = 9;
  const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
  return Array.from({ length: 12 }, () => {
    const ids = Int32Array.from({ length: 6 + (next() % 8) }, () => 3 + (next() % 250));
    return { input_ids: ids, labels: ids };
  });
}

const LR = 1e-3;

async function train(name: string, extra: Record<string, unknown>, schedule: Partial<BlockScheduleSettings>, stopAfterSteps?: number) {
  const outputDir = path.join(work, name);
  const config = { output_dir: outputDir, do_train: true, learning_rate: LR, weight_decay: 0, max_grad_norm: 0, logging_steps: 1, save_steps: 2, seed: 3,
    per_device_train_batch_size: 4, lr_scheduler_type: 'constant', ...extra };
  const model = CausalLM.load(modelDir);
  model.setAllTrainable(true);
  const lines: string[] = [];
  const optimizer = blockOptimizer(adamOptimizer({ decoupled: true }), { switchMode: 'ascending', switchInterval: 2, seed: 3, ...schedule }, 1);
  const trainer = new Trainer({
    model, modelDir, tuner: { addsAdapters: false, apply: () => {} }, args: trainingArgumentsFrom(config),
    dataCollator: (examples: readonly SupervisedExample[]) => collate('sft', examples, { padTokenId: 0 }),
    trainDataset: dataset(), optimizers: { optimizer, scheduler: LR_SCHEDULES.constant }, progressStream: { write: () => true },
    log: (line) => lines.push(line), stopAfterSteps,
  });
  const result = await trainer.train();
  return { result, lines, outputDir };
}

const base = SafetensorsWeights.open(modelDir);
function weights(dir: string): Map<string, Float32Array> {
  const w = SafetensorsWeights.fromFiles([path.join(dir, 'model.safetensors')]);
  return new Map(w.names.map((name) => [name, w.read(name)]));
}
/** The largest change of each tensor against the base model. */
function changes(dir: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, value] of weights(dir)) {
    const before = base.read(name);
    out.set(name, Math.max(...value.map((v, i) => Math.abs(v - before[i]))));
  }
  return out;
}
const changedLayers = (dir: string) =>
  [...changes(dir)].filter(([, d]) => d > 0).map(([name]) => /layers\.(\d+)\./.exec(name)?.[1] ?? name).filter((v, i, all) => all.indexOf(v) === i);

describe('BAdam in the trainer', () => {
  it('trains only the active block: steps 1-1 train layer 0, steps 2-3 layer 1; embeddings, norm and the rest stay', async () => {
    const one = await train('one', { max_steps: 1 }, {});
    expect(changedLayers(one.outputDir)).toEqual(['0']);
    expect(one.lines.join('\n')).toMatch(/trainable params: .* trainable%/);
    const three = await train('three', { max_steps: 3 }, {});
    expect(changedLayers(three.outputDir)).toEqual(['0', '1']);
    expect(three.lines.filter((l) => l.startsWith('BAdam:'))).toEqual([
      'BAdam: from step 1, parameters with the prefix model.layers.0. are trainable (9 tensors).',
      'BAdam: from step 2, parameters with the prefix model.layers.1. are trainable (9 tensors).',
    ]);
    // Layer 0 has the values it had after step 1: it stopped training when layer 1 started.
    const after1 = weights(one.outputDir);
    const after3 = weights(three.outputDir);
    for (const [name, value] of after1) if (name.includes('layers.0.')) expect(after3.get(name)).toEqual(value);
  });

  it("restarts the optimizer state with each block: a block's first step is Adam's first step (each weight moves by lr)", async () => {
    const run = await train('restart', { max_steps: 2 }, {});
    const moved = [...changes(run.outputDir)].filter(([name]) => name.includes('layers.1.') && name.endsWith('proj.weight'));
    expect(moved.length).toBe(7);
    // Adam's first update is lr * g / (|g| + eps), so no weight moves by more than lr (a continued state would differ).
    for (const [, d] of moved) expect(Math.abs(d - LR)).toBeLessThan(1e-6);
  });

  // Checkpoints every 2 steps: the crash resumes at step 5 inside block 4-5 (its state comes from the checkpoint);
  // every 3 steps: it resumes at step 4, where a block starts (fresh state).
  it.each([2, 3])('resumes after a crash with the same blocks, state and loss curve (save_steps %d)', async (saveSteps) => {
    const settings = { max_steps: 7, save_steps: saveSteps };
    const whole = await train(`whole-${saveSteps}`, settings, { switchMode: 'random' });
    await train(`crashed-${saveSteps}`, settings, { switchMode: 'random' }, 5);
    const resumed = await train(`crashed-${saveSteps}`, { ...settings, resume_from_checkpoint: true }, { switchMode: 'random' });
    expect(resumed.result.globalStep).toBe(7);
    const log = (dir: string) => readTrainerLog(path.join(dir, 'trainer_log.jsonl')).map((line) => [line.current_steps, line.loss]);
    expect(log(resumed.outputDir)).toEqual(log(whole.outputDir));
    const a = weights(resumed.outputDir);
    for (const [name, value] of weights(whole.outputDir)) {
      const other = a.get(name)!;
      for (let i = 0; i < value.length; i++) expect(Math.abs(value[i] - other[i])).toBeLessThan(1e-6);
    }
  });
});
