import * as path from 'node:path';
import { Graph } from '@tunekit/graph';
import { CausalLM, causalLMInputs, createRng, LoraAdapter } from '@tunekit/models';
import { RolloutRows } from '../src/batches';
import { PolicySampler, type RolloutSettings } from '../src/rollout';
import { RowScorer } from '../src/scorer';

// The rollout's log-probs of the sampled tokens (taken from the cached decoder's logits while sampling) against a
// full forward pass over the same prompt + completion rows: llama-micro with its LoRA adapter (B != 0) as the policy.
const fixture = path.resolve(__dirname, '..', '..', '..', '..', 'shared', 'fixtures', 'llama-micro');

function policy(): CausalLM {
  const model = CausalLM.load(path.join(fixture, 'model'));
  LoraAdapter.load(path.join(fixture, 'adapter'), model).apply(model, { trainable: true });
  return model;
}

const prompts = [[1, 17, 33, 90, 4], [1, 200], [1, 5, 6, 7, 8, 9, 10, 11]];
const settings: RolloutSettings = { maxNewTokens: 9, temperature: 0.9, topP: 0.95, topK: 40, repetitionPenalty: 1, eosTokenIds: [2], logitScale: 1 };

describe('PolicySampler', () => {
  const model = policy();
  let sampler: PolicySampler;
  let values: Map<string, Float32Array>;

  beforeAll(async () => {
    sampler = await PolicySampler.create(model, { session: {}, padTokenId: 0 });
    // The trainer's values: the adapter's tensors as loaded.
    const probe = new Graph('probe');
    model.forward(probe, causalLMInputs(probe));
    values = new Map(model.trainableParameters(probe).map((p) => [p.name, p.initial()]));
  });
  afterAll(() => sampler.release());

  it('feeds the adapter tensors as inputs (nothing of the policy is baked into the session)', () => {
    expect(sampler.parameterNames.length).toBeGreaterThan(0);
    expect(sampler.parameterNames.every((name) => name.includes('lora_'))).toBe(true);
  });

  it.each([1, 0.7])('gives the log-probs a full forward pass gives the same tokens (logits / %s)', async (logitScale) => {
    const completions = await sampler.sample(prompts, values, { ...settings, logitScale }, createRng(3));
    expect(completions.map((c) => c.promptIds)).toEqual(prompts);
    for (const c of completions) {
      expect(c.tokenIds.length).toBeGreaterThan(0);
      expect(c.tokenIds.length).toBeLessThanOrEqual(9);
      expect(c.finishReason).toBe(c.tokenIds.at(-1) === 2 ? 'stop' : 'length');
    }
    const rows = RolloutRows.of(completions, 0);
    const scorer = await RowScorer.create(model, { session: {}, logps: { logitScale } });
    try {
      const full = rows.gather((await scorer.run(rows, values)).logps!);
      completions.forEach((c, r) => c.logps.forEach((logp, i) => expect(logp).toBeCloseTo(full[r][i], 4)));
    } finally {
      await scorer.release();
    }
  });

  it('samples from the values it is given: LoRA B = 0 is the base model, the reference (adapters disabled)', async () => {
    const zeroB = new Map([...values].map(([name, v]) => [name, name.includes('lora_B') ? new Float32Array(v.length) : v]));
    const completions = await sampler.sample(prompts, zeroB, settings, createRng(5));
    const rows = RolloutRows.of(completions, 0);
    const reference = await RowScorer.create(model, { session: {}, disableAdapters: true, logps: { logitScale: 1 } });
    const withAdapter = await RowScorer.create(model, { session: {}, logps: { logitScale: 1 } });
    try {
      const ref = rows.gather((await reference.run(rows)).logps!);
      const adapted = rows.gather((await withAdapter.run(rows, values)).logps!);
      completions.forEach((c, r) => c.logps.forEach((logp, i) => expect(logp).toBeCloseTo(ref[r][i], 4)));
      // ... and the adapter's values would have given other log-probs.
      expect(adapted.flat().some((logp, i) => Math.abs(logp - ref.flat()[i]) > 1e-3)).toBe(true);
    } finally {
      await reference.release();
      await withAdapter.release();
    }
  });

  it('is reproducible from its seed, and greedy at temperature 0', async () => {
    const a = await sampler.sample(prompts, values, settings, createRng(11));
    const b = await sampler.sample(prompts, values, settings, createRng(11));
    expect(a.map((c) => c.tokenIds)).toEqual(b.map((c) => c.tokenIds));
    const greedy1 = await sampler.sample(prompts, values, { ...settings, temperature: 0 }, createRng(1));
    const greedy2 = await sampler.sample(prompts, values, { ...settings, temperature: 0 }, createRng(2));
    expect(greedy1.map((c) => c.tokenIds)).toEqual(greedy2.map((c) => c.tokenIds));
  });
});

describe('RolloutRows', () => {
  it('lays prompts left-padded, completions right-padded; labels and mask mark the completion tokens', () => {
    const rows = RolloutRows.of([
      { promptIds: [5, 6], tokenIds: [7], logps: [-1], finishReason: 'length' },
      { promptIds: [8], tokenIds: [9, 2], logps: [-2, -3], finishReason: 'stop' },
    ], 0);
    expect(rows.width).toBe(4);
    expect(Array.from(rows.batch.input_ids.data)).toEqual([5, 6, 7, 0, 0, 8, 9, 2]);
    expect(Array.from(rows.batch.attention_mask.data)).toEqual([1, 1, 1, 0, 0, 1, 1, 1]);
    expect(Array.from(rows.batch.position_ids.data)).toEqual([0, 1, 2, 1, 1, 0, 1, 2]);
    expect(Array.from(rows.batch.labels.data)).toEqual([-100, -100, 7, -100, -100, -100, 9, 2]);
    expect(Array.from(rows.mask)).toEqual([0, 1, 0, 0, 0, 1, 1, 0]);
    expect(Array.from(rows.lastTokenFeed().data as Float32Array)).toEqual([0, 0, 1, 0, 0, 0, 0, 1]);
    expect(Array.from(rows.spread([[0.5], [1, 2]]).data as Float32Array)).toEqual([0, 0.5, 0, 0, 0, 1, 2, 0]);
    expect(rows.gather([0, 0.5, 0, 0, 0, 1, 2, 0])).toEqual([[0.5], [1, 2]]);
  });
});
