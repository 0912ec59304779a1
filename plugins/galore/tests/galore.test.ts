import { applyOptimizer, Graph, Session, type HostTensor } from '@tunekit/graph';
import { composeSchema, PluginScope } from '@tunekit/kernel';
import { createRng, svdJacobi } from '@tunekit/models';
import * as plugin from '../src';
import { galoreAdamW, isGaloreTarget, MatrixProducts, projectedShapes, topSingularVectors, type GaloreSettings, type ProjectionType } from '../src';

const BETAS: [number, number] = [0.9, 0.999];
const EPS = 1e-8;

function randomMatrix(m: number, n: number, seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: m * n }, () => rng.normal());
}

/** Row-major matrix product in float64. */
function matmul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let t = 0; t < k; t++) for (let j = 0; j < n; j++) out[i * n + j] += a[i * k + t] * b[t * n + j];
  return out;
}

function transpose(a: ArrayLike<number>, m: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[j * m + i] = a[i * n + j];
  return out;
}

/** Runs GaLore's update graph on one parameter for the given steps, refreshing projectors through beforeStep. */
async function runGalore(settings: GaloreSettings, name: string, shape: [number, number], param: Float32Array, grads: Float32Array[], lr: number, weightDecay: number) {
  const optimizer = galoreAdamW(settings);
  const g = new Graph('galore');
  const p = g.input(name, 'float32', shape);
  const grad = g.input(`grad.${name}`, 'float32', shape);
  applyOptimizer(g, { optimizer, groups: [{ params: [p], weightDecay }], grads: new Map([[p, grad]]) });
  const session = await Session.create(g);
  const state = new Map<string, Float32Array>();
  const stateShapes = new Map<string, readonly number[]>();
  for (const key of optimizer.stateNames) {
    const s = optimizer.stateShape!(key, shape, name);
    if (s) {
      stateShapes.set(`${name}.${key}`, s);
      state.set(`${name}.${key}`, new Float32Array(s.reduce((a, b) => a * b, 1)));
    }
  }
  const history: { param: Float32Array; state: Map<string, Float32Array> }[] = [];
  let value = param;
  for (const [i, gradient] of grads.entries()) {
    await optimizer.beforeStep!({ step: i + 1, parameters: [{ name, shape }], grads: new Map([[name, gradient]]), state });
    const used = new Map(state);
    const feeds: Record<string, HostTensor> = {
      [name]: { dtype: 'float32', dims: shape, data: value },
      [`grad.${name}`]: { dtype: 'float32', dims: shape, data: gradient },
      'lr.0': { dtype: 'float32', dims: [], data: Float32Array.of(lr) },
      step: { dtype: 'float32', dims: [], data: Float32Array.of(i + 1) },
    };
    for (const [key, s] of stateShapes) feeds[key] = { dtype: 'float32', dims: [...s], data: state.get(key)! };
    const out = await session.run(feeds);
    value = out[`${name}.next`].data as Float32Array;
    for (const key of stateShapes.keys()) state.set(key, out[`${key}.next`].data as Float32Array);
    history.push({ param: value, state: used });
  }
  await session.release();
  await optimizer.release!();
  return { history, stateShapes };
}

const settings = (projType: ProjectionType, extra: Partial<GaloreSettings> = {}): GaloreSettings => ({
  targets: ['all'], rank: 2, updateInterval: 200, scale: 0.25, projType, betas: BETAS, eps: EPS, ...extra,
});

describe('GaLore projector types', () => {
  it('give the shapes GaLore gives: std projects the longer side away, reverse_std the shorter', () => {
    const tall = [6, 4];
    const wide = [3, 5];
    expect(projectedShapes('std', 2, tall)).toEqual({ left: undefined, right: [2, 4], low: [6, 2] });
    expect(projectedShapes('std', 2, wide)).toEqual({ left: [3, 2], right: undefined, low: [2, 5] });
    expect(projectedShapes('reverse_std', 2, tall)).toEqual({ left: [6, 2], right: undefined, low: [2, 4] });
    expect(projectedShapes('reverse_std', 2, wide)).toEqual({ left: undefined, right: [2, 5], low: [3, 2] });
    expect(projectedShapes('right', 2, wide)).toEqual({ left: undefined, right: [2, 5], low: [3, 2] });
    expect(projectedShapes('left', 2, tall)).toEqual({ left: [6, 2], right: undefined, low: [2, 4] });
    expect(projectedShapes('full', 2, tall)).toEqual({ left: [6, 2], right: [2, 4], low: [2, 2] });
    // A rank above the smaller side is cut to it.
    expect(projectedShapes('std', 9, tall).right).toEqual([4, 4]);
  });

  it('project the linear weights of the decoder (galore_target all), never embeddings, norms or lm_head', () => {
    expect(isGaloreTarget('model.layers.0.self_attn.q_proj.weight', [8, 8], ['all'])).toBe(true);
    expect(isGaloreTarget('model.layers.0.mlp.down_proj.weight', [8, 16], ['all'])).toBe(true);
    expect(isGaloreTarget('model.layers.0.self_attn.q_proj.bias', [8], ['all'])).toBe(false);
    expect(isGaloreTarget('model.layers.0.input_layernorm.weight', [8], ['all'])).toBe(false);
    expect(isGaloreTarget('model.embed_tokens.weight', [100, 8], ['all'])).toBe(false);
    expect(isGaloreTarget('lm_head.weight', [100, 8], ['all'])).toBe(false);
    expect(isGaloreTarget('lm_head.weight', [100, 8], ['lm_head'])).toBe(true);
    expect(isGaloreTarget('model.layers.0.mlp.down_proj.weight', [8, 16], ['q_proj', 'v_proj'])).toBe(false);
    const optimizer = galoreAdamW(settings('std'));
    expect(optimizer.stateShape!('exp_avg', [8], 'model.norm.weight')).toEqual([8]);
    expect(optimizer.stateShape!('projector_right', [8], 'model.norm.weight')).toBeUndefined();
  });

  it('each keep the update inside the subspaces they project on', async () => {
    const shape: [number, number] = [6, 4];
    const param = randomMatrix(6, 4, 1);
    const grad = randomMatrix(6, 4, 2);
    for (const type of ['std', 'reverse_std', 'right', 'left', 'full'] as const) {
      const { history } = await runGalore(settings(type), 'model.layers.0.mlp.up_proj.weight', shape, param, [grad], 1e-2, 0);
      const delta = Float64Array.from(history[0].param, (v, i) => v - param[i]);
      const left = history[0].state.get('model.layers.0.mlp.up_proj.weight.projector_left');
      const right = history[0].state.get('model.layers.0.mlp.up_proj.weight.projector_right');
      const sides = { std: 'right', reverse_std: 'left', right: 'right', left: 'left', full: 'both' }[type];
      expect(Boolean(left)).toBe(sides === 'left' || sides === 'both');
      expect(Boolean(right)).toBe(sides === 'right' || sides === 'both');
      // Removing the component in the projectors' span leaves nothing: (I - A Aᵀ) Δ = 0 and Δ (I - Bᵀ B) = 0.
      if (left) {
        const inSpan = matmul(left, matmul(transpose(left, 6, 2), delta, 2, 6, 4), 6, 2, 4);
        for (let i = 0; i < delta.length; i++) expect(Math.abs(delta[i] - inSpan[i])).toBeLessThan(1e-6);
      }
      if (right) {
        const inSpan = matmul(matmul(delta, transpose(right, 2, 4), 6, 4, 2), right, 6, 2, 4);
        for (let i = 0; i < delta.length; i++) expect(Math.abs(delta[i] - inSpan[i])).toBeLessThan(1e-6);
      }
      expect(Math.max(...delta.map(Math.abs))).toBeGreaterThan(1e-4);
    }
  });
});

describe("GaLore's update", () => {
  it('equals project, Adam in the low-rank space, project back, scale, then decay, on a worked example', async () => {
    const name = 'model.layers.1.self_attn.o_proj.weight';
    const shape: [number, number] = [6, 4];
    const [m, n, r] = [6, 4, 2];
    const param = randomMatrix(m, n, 3);
    const grads = [randomMatrix(m, n, 4), randomMatrix(m, n, 5), randomMatrix(m, n, 6)];
    const [lr, wd, scale] = [0.05, 0.1, 0.25];
    // Interval 2: the projector is computed at steps 1 and 3 from those steps' gradients.
    const { history } = await runGalore(settings('std', { updateInterval: 2 }), name, shape, param, grads, lr, wd);

    // The projector of step 1 is Vᵀ[:2, :] of the exact SVD of the gradient (up to the sign of each vector).
    const exact = svdJacobi(grads[0], m, n);
    const b1 = history[0].state.get(`${name}.projector_right`)!;
    for (let t = 0; t < r; t++) {
      let dot = 0;
      for (let j = 0; j < n; j++) dot += b1[t * n + j] * exact.v[j * exact.k + t];
      expect(Math.abs(Math.abs(dot) - 1)).toBeLessThan(1e-5);
    }
    expect(history[1].state.get(`${name}.projector_right`)).toEqual(b1); // step 2 keeps it
    expect(history[2].state.get(`${name}.projector_right`)).not.toEqual(b1); // step 3 recomputes it

    // The same three steps by hand, in float64.
    let w = Float64Array.from(param);
    let expAvg = new Float64Array(m * r);
    let expAvgSq = new Float64Array(m * r);
    for (let step = 1; step <= 3; step++) {
      const b = history[step - 1].state.get(`${name}.projector_right`)!;
      const low = matmul(grads[step - 1], transpose(b, r, n), m, n, r); // R = G Bᵀ
      expAvg = expAvg.map((v, i) => BETAS[0] * v + (1 - BETAS[0]) * low[i]);
      expAvgSq = expAvgSq.map((v, i) => BETAS[1] * v + (1 - BETAS[1]) * low[i] * low[i]);
      const normalized = expAvg.map((v, i) => v / (Math.sqrt(expAvgSq[i]) + EPS));
      const back = matmul(normalized, b, m, r, n); // N B
      const stepSize = (lr * Math.sqrt(1 - BETAS[1] ** step)) / (1 - BETAS[0] ** step);
      w = w.map((v, i) => v - stepSize * scale * back[i]);
      w = w.map((v) => v - lr * wd * v);
      const got = history[step - 1].param;
      for (let i = 0; i < w.length; i++) expect(Math.abs(got[i] - w[i])).toBeLessThan(2e-6);
    }
  });

  it('takes the plain step (no projection, no scale) for parameters it does not project', async () => {
    const name = 'model.layers.0.mlp.up_proj.weight';
    const param = randomMatrix(1, 5, 7);
    const grad = randomMatrix(1, 5, 8);
    const onlyQ = settings('std', { targets: ['q_proj'] });
    expect(galoreAdamW(onlyQ).stateShape!('projector_left', [1, 5], name)).toBeUndefined();
    const { history } = await runGalore(onlyQ, name, [1, 5], param, [grad], 0.01, 0);
    // Adam's first step is lr * g / (|g| + eps): each weight moves by lr against its gradient's sign.
    for (let i = 0; i < 5; i++) expect(history[0].param[i]).toBeCloseTo(param[i] - 0.01 * Math.sign(grad[i]), 5);
  });
});

describe('the randomized SVD of large gradients', () => {
  it('finds the exact top-r projector to 1e-4 when the spectrum has a gap', async () => {
    // A 96 x 160 gradient: rank-16 signal with singular values 50..20 plus small noise.
    const [m, n, r] = [96, 160, 16];
    const rng = createRng(11);
    const u = randomMatrix(m, r, 12);
    const v = randomMatrix(r, n, 13);
    const signal = matmul(u.map((x, i) => x * (50 - 2 * (i % r))), v, m, r, n);
    const grad = Float32Array.from(signal, (x) => x / Math.sqrt(m) + 0.01 * rng.normal());
    const products = await MatrixProducts.create();
    const randomized = await topSingularVectors(grad, [m, n], r, 1, products);
    await products.release();
    const exact = svdJacobi(grad, m, n);
    // Compare the projectors onto the top-r right singular subspace: Vr Vrᵀ (n x n).
    const projector = (svd: { v: Float64Array; k: number }) => {
      const out = new Float64Array(n * n);
      for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) for (let t = 0; t < r; t++) out[a * n + b] += svd.v[a * svd.k + t] * svd.v[b * svd.k + t];
      return out;
    };
    const pr = projector(randomized);
    const pe = projector(exact);
    let worst = 0;
    for (let i = 0; i < pr.length; i++) worst = Math.max(worst, Math.abs(pr[i] - pe[i]));
    expect(worst).toBeLessThan(1e-4);
  });
});

describe('the GaLore keys', () => {
  const scope = new PluginScope();
  scope.load(plugin);
  const schema = composeSchema(scope);
  const validate = (raw: Record<string, unknown>) => schema.validate({ model_name_or_path: 'm', ...raw }, scope.registry, { points: [] });
  const messages = (raw: Record<string, unknown>) => validate(raw).issues.map((issue) => `${issue.key}: ${issue.message}`);

  it('has LLaMA-Factory defaults', () => {
    const result = validate({ use_galore: true, finetuning_type: 'full' });
    expect(result.issues).toEqual([]);
    if (!result.ok) return;
    expect(result.config).toMatchObject({ galore_target: ['all'], galore_rank: 16, galore_update_interval: 200, galore_scale: 0.25, galore_proj_type: 'std', galore_layerwise: false });
    expect(validate({ use_galore: true, finetuning_type: 'full', galore_target: 'q_proj, v_proj' }).ok && validate({ use_galore: true, finetuning_type: 'full', galore_target: 'q_proj, v_proj' })).toMatchObject({ config: { galore_target: ['q_proj', 'v_proj'] } });
  });

  it('refuses the combinations LLaMA-Factory refuses, naming the key and the fix', () => {
    expect(messages({ use_galore: true, finetuning_type: 'lora' })).toEqual([expect.stringMatching(/^use_galore: .*finetuning_type is lora: set finetuning_type: full/)]);
    expect(messages({ use_galore: true, finetuning_type: 'full', galore_layerwise: true, gradient_accumulation_steps: 4 })).toEqual([
      expect.stringMatching(/^galore_layerwise: Per-layer GaLore does not support gradient accumulation/),
    ]);
    expect(messages({ use_galore: true, finetuning_type: 'full', optim: 'sgd' })).toEqual([expect.stringMatching(/^optim: GaLore works with optim adamw_torch/)]);
    expect(messages({ use_galore: true, finetuning_type: 'full', optim: 'adafactor' })).toEqual([expect.stringMatching(/^optim: GaLore with optim adafactor .* is not built/)]);
    expect(messages({ use_galore: true, finetuning_type: 'full', galore_proj_type: 'diagonal' })).toEqual([expect.stringMatching(/^galore_proj_type: /)]);
    // Without use_galore the keys are inert.
    expect(messages({ finetuning_type: 'lora', galore_rank: 4 })).toEqual([]);
  });

  it('steps layer-wise without clipping, as LLaMA-Factory does', () => {
    expect(galoreAdamW(settings('std', { layerwise: true })).gradientClipping).toBe(false);
    expect(galoreAdamW(settings('std')).gradientClipping).toBeUndefined();
  });
});
