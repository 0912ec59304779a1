import type { Graph, GraphOptimizer, Tensor } from '@tunekit/graph';
import type { OptimizerParameter, ParameterBlock } from '@tunekit/kernel';
import { createRng } from '@tunekit/models';

export interface RatioSettings {
  /** badam_update_ratio: the fraction of each weight updated during one period. */
  readonly ratio: number;
  /** badam_mask_mode: adjacent entries from a moving offset, or entries of a seeded permutation. */
  readonly maskMode: 'adjacent' | 'scatter';
  /** badam_switch_interval: steps per period (new masks, fresh state); -1 keeps the first masks. */
  readonly switchInterval: number;
  readonly seed: number;
  readonly betas: readonly [number, number];
  readonly eps: number;
}

/** Entries of a weight updated in one period: int(numel * ratio), at least 1. */
export function maskedCount(numel: number, ratio: number): number {
  return Math.max(1, Math.floor(numel * ratio));
}

/** The period (0-based) of optimizer step `step` and its first step: BAdam resets state after every interval steps. */
export function periodOf(step: number, interval: number): { period: number; since: number } {
  if (interval <= 0) return { period: 0, since: 1 };
  const period = Math.floor((step - 1) / interval);
  return { period, since: period * interval + 1 };
}

/**
 * The flat indices a weight updates in period `period`, sorted. Adjacent: k entries from offset period * k (mod
 * numel), wrapping to the start. Scatter: the same window over a permutation of the entries drawn once per weight
 * shape from the seed (BAdam shares one mask among weights of the same shape, keep_mask).
 */
export function maskIndices(
  shape: readonly number[],
  settings: Pick<RatioSettings, 'ratio' | 'maskMode' | 'seed'>,
  period: number,
  /** Permutations already drawn, by shape (every weight of a shape and every period use the same one). */
  orders = new Map<string, Int32Array>(),
): number[] {
  const numel = shape.reduce((a, b) => a * b, 1);
  const k = maskedCount(numel, settings.ratio);
  const offset = (period * k) % numel;
  let order: Int32Array | undefined;
  if (settings.maskMode === 'scatter') {
    const key = shape.join('x');
    order = orders.get(key) ?? permutation(numel, settings.seed, shape);
    orders.set(key, order);
  }
  const out = Array.from({ length: k }, (_, j) => {
    const i = (offset + j) % numel;
    return order ? order[i] : i;
  });
  return out.sort((a, b) => a - b);
}

function permutation(n: number, seed: number, shape: readonly number[]): Int32Array {
  let h = seed >>> 0;
  for (const d of shape) h = Math.imul(h ^ d, 16777619) >>> 0;
  const random = createRng(h);
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random.uniform() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

/** BAdam's ratio mode leaves the embeddings and lm_head frozen (include_embedding / include_lm_head false). */
export function ratioTrainable(trainable: readonly OptimizerParameter[]): string[] {
  return trainable.filter((p) => !p.name.includes('embed_tokens') && !p.name.startsWith('lm_head')).map((p) => p.name);
}

/**
 * BAdam's BlockOptimizerRatio as graph code: every weight but the embeddings and lm_head trains, but each updates
 * only a masked fraction of its entries (badam_update_ratio) with a sparse Adam whose moments cover those entries
 * alone: m ← β₁ m + (1 − β₁) g[idx], v ← β₂ v + (1 − β₂) g[idx]², w[idx] ← w[idx] − lr √(1 − β₂ᵗ)/(1 − β₁ᵗ) m / (√v + ε),
 * no weight decay. Every badam_switch_interval steps the masks move on and the state restarts: each period is an
 * activation of the kernel's `activeBlock`, and the trainer rebuilds this update for it.
 */
export function ratioOptimizer(settings: RatioSettings): GraphOptimizer {
  let period = 0;
  const orders = new Map<string, Int32Array>();
  const [beta1, beta2] = settings.betas;
  return {
    stateNames: ['exp_avg', 'exp_avg_sq'],
    stateShape: (_name, shape) => [maskedCount(shape.reduce((a, b) => a * b, 1), settings.ratio)],
    update(g: Graph, { param, grad, state, lr, step }) {
      const shape = param.shape as readonly number[];
      const indices = g.constant(BigInt64Array.from(maskIndices(shape, settings, period, orders), (i) => BigInt(i)), 'int64', [state[0].shape[0] as number]);
      const flat = g.Reshape(param, [-1]);
      const selected = g.Gather(g.Reshape(grad, [-1]), indices);
      const dt = param.dtype;
      const rate = lr.dtype === dt ? lr : g.Cast(lr, dt);
      const t = step.dtype === dt ? step : g.Cast(step, dt);
      const expAvg = g.Add(g.Mul(state[0], beta1), g.Mul(selected, 1 - beta1));
      const expAvgSq = g.Add(g.Mul(state[1], beta2), g.Mul(g.Mul(selected, selected), 1 - beta2));
      const stepSize = g.Div(g.Mul(rate, g.Sqrt(g.Sub(1, g.Pow(g.constant(beta2, dt), t)))), g.Sub(1, g.Pow(g.constant(beta1, dt), t)));
      const moved = g.Sub(g.Gather(flat, indices), g.Mul(stepSize, g.Div(expAvg, g.Add(g.Sqrt(expAvgSq), settings.eps))));
      const next = g.Reshape(g.ScatterElements(flat, indices, moved), [...shape]);
      return { param: next, state: [expAvg, expAvgSq] as Tensor[] };
    },
    activeBlock(step, trainable): ParameterBlock {
      const current = periodOf(step, settings.switchInterval);
      period = current.period;
      return { label: `ratio ${settings.ratio}, ${settings.maskMode} masks, period ${current.period}`, names: ratioTrainable(trainable), since: current.since };
    },
  };
}
