import type { Graph, GraphOptimizer, SessionOptions, Tensor } from '@tunekit/graph';
import { MatrixProducts } from './products';
import type { OptimizerStepContext } from '@tunekit/kernel';
import { effectiveRank, projectedShapes, projectionSeed, projectionSides, projectorsOf, topSingularVectors, type ProjectionType } from './projector';

export interface GaloreSettings {
  /** galore_target: ['all'] (every linear layer of the decoder, not lm_head) or module-name substrings. */
  readonly targets: readonly string[];
  readonly rank: number;
  /** galore_update_interval: the projectors are recomputed at steps 1, 1 + interval, 1 + 2 interval, ... */
  readonly updateInterval: number;
  readonly scale: number;
  readonly projType: ProjectionType;
  readonly betas: readonly [number, number];
  readonly eps: number;
  /** galore_layerwise: each parameter steps as its gradient arrives, so max_grad_norm never applies (LLaMA-Factory). */
  readonly layerwise?: boolean;
}

/**
 * Whether GaLore projects a parameter, as LLaMA-Factory selects them: the 2-D weights of the linear layers whose
 * module name contains a galore_target (`all`: every linear layer but lm_head). In Llama-family models every 2-D
 * tensor but the embedding is a linear weight.
 */
export function isGaloreTarget(name: string, shape: readonly number[], targets: readonly string[]): boolean {
  if (shape.length !== 2 || !name.endsWith('.weight') || name.includes('embed_tokens')) return false;
  const module = name.slice(0, -'.weight'.length);
  if (targets.length === 1 && targets[0] === 'all') return module !== 'lm_head';
  return targets.some((target) => module.includes(target));
}

const STATE_NAMES = ['exp_avg', 'exp_avg_sq', 'projector_left', 'projector_right'] as const;

/**
 * GaLore's AdamW (galore_torch.GaLoreAdamW), as LLaMA-Factory builds it for optim adamw_torch, as graph code. For a
 * projected m × n weight with projectors A (m × r) and/or B (r × n):
 *
 *   R = Aᵀ G Bᵀ (the sides the projection type uses)      m ← β₁ m + (1 − β₁) R      v ← β₂ v + (1 − β₂) R²
 *   N = m / (√v + ε)       W ← W − lr · √(1 − β₂ᵗ) / (1 − β₁ᵗ) · scale · A N B       W ← W − lr · wd · W
 *
 * so the moments have the low-rank shape. Every other parameter takes the same step without projection or scale.
 * Weight decay is applied after the step, to the updated weight, as GaLoreAdamW does (torch's AdamW decays before).
 * The projectors are optimizer state, recomputed on the host from the step's gradient (`beforeStep`) every
 * galore_update_interval steps; the moments carry over when they change, as in GaLore.
 */
export function galoreAdamW(settings: GaloreSettings, sessionOptions: SessionOptions = {}): GraphOptimizer {
  // The sessions that multiply gradients for the randomized SVD, opened at the first refresh.
  let products: Promise<MatrixProducts> | undefined;
  const projected = (name: string | undefined, shape: readonly number[]) => name !== undefined && isGaloreTarget(name, shape, settings.targets);
  const [beta1, beta2] = settings.betas;
  return {
    stateNames: STATE_NAMES,
    gradientClipping: settings.layerwise ? false : undefined,
    stateShape(name, shape, parameterName) {
      if (!projected(parameterName, shape)) return name.startsWith('projector') ? undefined : shape;
      const shapes = projectedShapes(settings.projType, settings.rank, shape);
      if (name === 'projector_left') return shapes.left;
      if (name === 'projector_right') return shapes.right;
      return shapes.low;
    },
    update(g: Graph, { param, grad, state, lr, step, weightDecay }) {
      const [expAvgIn, expAvgSqIn, left, right] = state as (Tensor | undefined)[];
      let low = grad;
      if (left) low = g.MatMul(g.Transpose(left, [1, 0]), low);
      if (right) low = g.MatMul(low, g.Transpose(right, [1, 0]));
      const dt = param.dtype;
      const rate = lr.dtype === dt ? lr : g.Cast(lr, dt);
      const t = step.dtype === dt ? step : g.Cast(step, dt);
      const expAvg = g.Add(g.Mul(expAvgIn!, beta1), g.Mul(low, 1 - beta1));
      const expAvgSq = g.Add(g.Mul(expAvgSqIn!, beta2), g.Mul(g.Mul(low, low), 1 - beta2));
      const bc1 = g.Sub(1, g.Pow(g.constant(beta1, dt), t));
      const bc2 = g.Sub(1, g.Pow(g.constant(beta2, dt), t));
      const stepSize = g.Div(g.Mul(rate, g.Sqrt(bc2)), bc1);
      let direction = g.Div(expAvg, g.Add(g.Sqrt(expAvgSq), settings.eps));
      if (left) direction = g.MatMul(left, direction);
      if (right) direction = g.MatMul(direction, right);
      if (left || right) direction = g.Mul(direction, settings.scale);
      let next = g.Sub(param, g.Mul(stepSize, direction));
      if (weightDecay > 0) next = g.Sub(next, g.Mul(next, g.Mul(rate, weightDecay)));
      const out: (Tensor | undefined)[] = [expAvg, expAvgSq, left, right];
      return { param: next, state: out as Tensor[] };
    },
    async beforeStep(context: OptimizerStepContext) {
      if ((context.step - 1) % settings.updateInterval !== 0) return;
      for (const p of context.parameters) {
        const leftKey = `${p.name}.projector_left`;
        const rightKey = `${p.name}.projector_right`;
        if (!context.state.has(leftKey) && !context.state.has(rightKey)) continue;
        products ??= MatrixProducts.create(sessionOptions);
        const svd = await topSingularVectors(context.grads.get(p.name)!, p.shape, settings.rank, projectionSeed(p.name, context.step), await products);
        const made = projectorsOf(svd, effectiveRank(settings.rank, p.shape), projectionSides(settings.projType, p.shape));
        if (made.left) context.state.set(leftKey, made.left);
        if (made.right) context.state.set(rightKey, made.right);
      }
    },
    async release() {
      const open = products;
      products = undefined;
      if (open) await (await open).release();
    },
  };
}
