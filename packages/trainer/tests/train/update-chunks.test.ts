import { adamOptimizer } from '@tunekit/graph';
import { createRng } from '@tunekit/models';
import { UpdateProgram, type ParameterGroupSpec, type ParameterSlot } from '../../src';

const parameters: ParameterSlot[] = [
  { name: 'model.embed_tokens.weight', shape: [40, 8] },
  { name: 'model.layers.0.self_attn.q_proj.weight', shape: [8, 8] },
  { name: 'model.layers.0.input_layernorm.weight', shape: [8] },
  { name: 'model.layers.0.mlp.up_proj.weight', shape: [16, 8] },
  { name: 'model.layers.0.mlp.down_proj.weight', shape: [8, 16] },
  { name: 'model.norm.weight', shape: [8] },
];
const groups: ParameterGroupSpec[] = [
  { names: parameters.filter((p) => p.shape.length > 1).map((p) => p.name), weightDecay: 0.1, lrScale: 1 },
  { names: parameters.filter((p) => p.shape.length === 1).map((p) => p.name), weightDecay: 0, lrScale: 2 },
];
const random = (seed: number, p: ParameterSlot) => {
  const rng = createRng(seed);
  return Float32Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => rng.normal());
};

async function threeSteps(chunkFloats: number, maxGradNorm: number) {
  const program = await UpdateProgram.create(parameters, adamOptimizer({ decoupled: true }), groups, { maxGradNorm, session: {}, chunkFloats });
  const values = new Map(parameters.map((p, i) => [p.name, random(i, p)]));
  const state = program.initialState();
  const norms: (number | undefined)[] = [];
  for (let step = 1; step <= 3; step++) {
    const grads = new Map(parameters.map((p, i) => [p.name, random(100 * step + i, p)]));
    norms.push(await program.step(values, grads, state, 1e-2, step));
    expect(grads.size).toBe(0); // every gradient was consumed
  }
  await program.release();
  return { values, state, norms };
}

function worst(a: ReadonlyMap<string, Float32Array>, b: ReadonlyMap<string, Float32Array>): number {
  let max = 0;
  for (const [name, x] of a) x.forEach((v, i) => (max = Math.max(max, Math.abs(v - b.get(name)![i]))));
  return max;
}

describe('the update in chunks', () => {
  it.each([0, 0.5])('takes the same steps as one session, clipping included (max_grad_norm %s)', async (maxGradNorm) => {
    const whole = await threeSteps(1e9, maxGradNorm);
    const chunked = await threeSteps(200, maxGradNorm); // 320 (the embedding alone), then runs of <= 200 values
    expect(worst(chunked.values, whole.values)).toBeLessThan(1e-6);
    expect(worst(chunked.state, whole.state)).toBeLessThan(1e-6);
    if (maxGradNorm > 0) {
      chunked.norms.forEach((n, i) => expect(n!).toBeCloseTo(whole.norms[i]!, 4));
      expect(whole.norms[0]!).toBeGreaterThan(maxGradNorm); // the clipping was active
    } else {
      expect(chunked.norms).toEqual([undefined, undefined, undefined]);
    }
  });

  it('run() leaves its inputs untouched and returns new maps', async () => {
    const program = await UpdateProgram.create(parameters, adamOptimizer({ decoupled: true }), groups, { maxGradNorm: 1, session: {}, chunkFloats: 200 });
    const values = new Map(parameters.map((p, i) => [p.name, random(i, p)]));
    const grads = new Map(parameters.map((p, i) => [p.name, random(50 + i, p)]));
    const state = program.initialState();
    const result = await program.run(values, grads, state, 1e-2, 1);
    expect(grads.size).toBe(parameters.length);
    expect(result.values.get('model.norm.weight')).not.toBe(values.get('model.norm.weight'));
    expect(worst(values, new Map(parameters.map((p, i) => [p.name, random(i, p)])))).toBe(0);
    await program.release();
  });
});
