import type { Optimizer } from '@tunekit/kernel';
import { DType, arrayClassOf } from './dtype';
import { GraphError } from './errors';
import { Graph, Tensor } from './graph';
import type { HostTensor } from './session';
import { isStatic } from './shape';

// Optimizer updates as graph code (as tinygrad's optim): each function appends the update for one parameter and
// returns the new parameter and state tensors. Hyper-parameters that change per step (lr, step) are tensors, usually
// graph inputs, so a scheduler changes them without rebuilding the graph.

/** A number (baked into the graph) or a scalar tensor (e.g. a graph input fed each step). */
export type Scalar = number | Tensor;

function scalarAs(g: Graph, s: Scalar, dtype: DType): Tensor {
  if (typeof s === 'number') return g.constant(s, dtype);
  if (s.rank !== 0 && !(isStatic(s.shape) && s.shape.every((d) => d === 1))) throw new GraphError(`expected a scalar, got ${s}`);
  return s.dtype === dtype ? s : g.Cast(s, dtype);
}

export interface AdamHyper {
  lr: Scalar;
  /** 1-based step count after this update (torch's state['step']). */
  step: Scalar;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export interface AdamState {
  param: Tensor;
  grad: Tensor;
  expAvg: Tensor;
  expAvgSq: Tensor;
}

function adamCore(g: Graph, s: AdamState, gradient: Tensor, param: Tensor, h: AdamHyper): AdamState {
  const dt = s.param.dtype;
  const [b1, b2] = h.betas ?? [0.9, 0.999];
  const eps = h.eps ?? 1e-8;
  const lr = scalarAs(g, h.lr, dt);
  const step = scalarAs(g, h.step, dt);
  const expAvg = g.Add(g.Mul(s.expAvg, b1), g.Mul(gradient, 1 - b1));
  const expAvgSq = g.Add(g.Mul(s.expAvgSq, b2), g.Mul(g.Mul(gradient, gradient), 1 - b2));
  const bc1 = g.Sub(1, g.Pow(g.constant(b1, dt), step));
  const bc2 = g.Sub(1, g.Pow(g.constant(b2, dt), step));
  const stepSize = g.Div(lr, bc1);
  // eps is added after the bias-corrected sqrt, exactly as torch does.
  const denom = g.Add(g.Div(g.Sqrt(expAvgSq), g.Sqrt(bc2)), eps);
  const next = g.Sub(param, g.Mul(stepSize, g.Div(expAvg, denom)));
  return { param: next, grad: gradient, expAvg, expAvgSq };
}

/** torch.optim.AdamW: decoupled weight decay (p *= 1 - lr*wd) before the Adam step. */
export function adamwUpdate(g: Graph, s: AdamState, h: AdamHyper): AdamState {
  const wd = h.weightDecay ?? 0.01;
  const lr = scalarAs(g, h.lr, s.param.dtype);
  const decayed = wd !== 0 ? g.Mul(s.param, g.Sub(1, g.Mul(lr, wd))) : s.param;
  return adamCore(g, s, s.grad, decayed, h);
}

/** torch.optim.Adam: L2 weight decay added to the gradient (grad += wd * p). */
export function adamUpdate(g: Graph, s: AdamState, h: AdamHyper): AdamState {
  const wd = h.weightDecay ?? 0;
  const gradient = wd !== 0 ? g.Add(s.grad, g.Mul(s.param, wd)) : s.grad;
  return adamCore(g, s, gradient, s.param, h);
}

export interface SgdHyper {
  lr: Scalar;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
  /** 1-based step; needed with momentum and dampening (torch's first step copies the gradient into the buffer). */
  step?: Scalar;
}

export interface SgdState {
  param: Tensor;
  grad: Tensor;
  /** Required when momentum > 0; feed zeros at the first step. */
  momentumBuffer?: Tensor;
}

/** torch.optim.SGD with momentum, dampening, nesterov and L2 weight decay. */
export function sgdUpdate(g: Graph, s: SgdState, h: SgdHyper): SgdState {
  const dt = s.param.dtype;
  const { momentum = 0, dampening = 0, nesterov = false, weightDecay = 0 } = h;
  if (nesterov && (momentum <= 0 || dampening !== 0)) throw new GraphError('SGD: nesterov needs momentum > 0 and dampening 0 (as torch)');
  let d = weightDecay !== 0 ? g.Add(s.grad, g.Mul(s.param, weightDecay)) : s.grad;
  let buf: Tensor | undefined;
  if (momentum !== 0) {
    if (!s.momentumBuffer) throw new GraphError('SGD with momentum needs a momentumBuffer tensor');
    buf = g.Add(g.Mul(s.momentumBuffer, momentum), g.Mul(d, 1 - dampening));
    if (dampening !== 0) {
      if (h.step === undefined) throw new GraphError('SGD with dampening needs `step` (the first step copies the gradient)');
      buf = g.Where(g.LessOrEqual(scalarAs(g, h.step, dt), 1), d, buf);
    }
    d = nesterov ? g.Add(d, g.Mul(buf, momentum)) : buf;
  }
  const next = g.Sub(s.param, g.Mul(d, scalarAs(g, h.lr, dt)));
  return { param: next, grad: s.grad, momentumBuffer: buf };
}

/**
 * torch.nn.utils.clip_grad_norm_: total = sqrt(sum of squares of all grads); every grad is scaled by
 * min(1, maxNorm / (total + 1e-6)). The norm is accumulated in float32 (float64 if any grad is float64).
 */
export function clipGradNorm(grads: readonly Tensor[], maxNorm: Scalar): { grads: Tensor[]; totalNorm: Tensor } {
  const { scale, totalNorm } = clipCoefficient(grads, maxNorm);
  const g = grads[0].graph;
  return { grads: grads.map((t) => g.Mul(t, t.dtype === scale.dtype ? scale : g.Cast(scale, t.dtype))), totalNorm };
}

/** The global gradient norm and clip_grad_norm_'s coefficient min(1, maxNorm / (total + 1e-6)), as `clipGradNorm`. */
export function clipCoefficient(grads: readonly Tensor[], maxNorm: Scalar): { scale: Tensor; totalNorm: Tensor } {
  if (grads.length === 0) throw new GraphError('clipGradNorm: no gradients');
  const g = grads[0].graph;
  const acc: DType = grads.some((t) => t.dtype === 'float64') ? 'float64' : 'float32';
  const sums = grads.map((t) => {
    const x = t.dtype === acc ? t : g.Cast(t, acc);
    return g.ReduceSum(g.Mul(x, x), undefined, false);
  });
  const totalNorm = g.Sqrt(sums.reduce((p, q) => g.Add(p, q)));
  const scale = g.Min(g.Div(scalarAs(g, maxNorm, acc), g.Add(totalNorm, 1e-6)), 1);
  return { scale, totalNorm };
}

// ------------------------------------------------------------------------------------------ a whole training update

export type OptimizerSpec =
  | { kind: 'adamw' | 'adam'; betas?: [number, number]; eps?: number }
  | { kind: 'sgd'; momentum?: number; dampening?: number; nesterov?: boolean };

/** An optimizer as graph code: the kernel's `Optimizer` extension point, on this package's Graph and Tensor. */
export type GraphOptimizer = Optimizer<Graph, Tensor>;

/** torch.optim.AdamW (decoupled weight decay) or torch.optim.Adam (L2 weight decay) as a GraphOptimizer. */
export function adamOptimizer(options: { decoupled: boolean; betas?: [number, number]; eps?: number }): GraphOptimizer {
  const rule = options.decoupled ? adamwUpdate : adamUpdate;
  return {
    stateNames: ['exp_avg', 'exp_avg_sq'],
    update(g, { param, grad: gradient, state, lr, step, weightDecay }) {
      const r = rule(g, { param, grad: gradient, expAvg: state[0], expAvgSq: state[1] }, { lr, step, betas: options.betas, eps: options.eps, weightDecay });
      return { param: r.param, state: [r.expAvg, r.expAvgSq] };
    },
  };
}

/** torch.optim.SGD as a GraphOptimizer; it keeps a momentum buffer only when momentum > 0. */
export function sgdOptimizer(options: { momentum?: number; dampening?: number; nesterov?: boolean } = {}): GraphOptimizer {
  const withMomentum = (options.momentum ?? 0) !== 0;
  return {
    stateNames: withMomentum ? ['momentum_buffer'] : [],
    update(g, { param, grad: gradient, state, lr, step, weightDecay }) {
      const r = sgdUpdate(g, { param, grad: gradient, momentumBuffer: state[0] }, { ...options, lr, step, weightDecay });
      return { param: r.param, state: withMomentum ? [r.momentumBuffer!] : [] };
    },
  };
}

export interface AdafactorOptions {
  /** eps1 (added to squared gradients), eps2 (floor of the parameter scale). Default [1e-30, 1e-3]. */
  eps?: [number, number];
  /** RMS clipping threshold of the update; default 1. */
  clipThreshold?: number;
  /** beta2 at step t is 1 - t^decayRate; default -0.8. */
  decayRate?: number;
}

/**
 * transformers' Adafactor as the Hugging Face Trainer builds it for optim=adafactor: scale_parameter=False,
 * relative_step=False (so the learning rate is the scheduled one), no first moment. Matrices keep row and column means
 * of the squared gradient (exp_avg_sq_row / exp_avg_sq_col, over the last two axes), vectors the full
 * exp_avg_sq; the update is grad / sqrt(v), divided by max(1, RMS(update) / clip_threshold); weight decay
 * p -= lr * wd * p uses the parameter before the step.
 */
export function adafactorOptimizer(options: AdafactorOptions = {}): GraphOptimizer {
  const [eps1] = options.eps ?? [1e-30, 1e-3];
  const clip = options.clipThreshold ?? 1;
  const decayRate = options.decayRate ?? -0.8;
  return {
    stateNames: ['exp_avg_sq_row', 'exp_avg_sq_col', 'exp_avg_sq'],
    stateShape(name, shape) {
      const factored = shape.length >= 2;
      if (name === 'exp_avg_sq') return factored ? undefined : shape;
      if (!factored) return undefined;
      return name === 'exp_avg_sq_row' ? shape.slice(0, -1) : [...shape.slice(0, -2), shape[shape.length - 1]];
    },
    update(g, { param, grad: gradient, state, lr, step, weightDecay }) {
      const dt = param.dtype;
      const rank = param.rank;
      const beta2t = g.Sub(1, g.Pow(scalarAs(g, step, dt), g.constant(decayRate, dt)));
      const keep = g.Sub(1, beta2t);
      const squared = g.Add(g.Mul(gradient, gradient), eps1);
      let update: Tensor;
      let next: (Tensor | undefined)[];
      if (rank >= 2) {
        const row = g.Add(g.Mul(state[0], beta2t), g.Mul(g.ReduceMean(squared, [rank - 1], false), keep));
        const col = g.Add(g.Mul(state[1], beta2t), g.Mul(g.ReduceMean(squared, [rank - 2], false), keep));
        // v ~ outer(row / mean(row), col): update = grad * rsqrt(row / mean(row)) * rsqrt(col).
        const rowFactor = g.Unsqueeze(g.Reciprocal(g.Sqrt(g.Div(row, g.ReduceMean(row, [rank - 2], true)))), [rank - 1]);
        const colFactor = g.Unsqueeze(g.Reciprocal(g.Sqrt(col)), [rank - 2]);
        update = g.Mul(g.Mul(rowFactor, colFactor), gradient);
        next = [row, col, undefined];
      } else {
        const full = g.Add(g.Mul(state[2], beta2t), g.Mul(squared, keep));
        update = g.Mul(g.Reciprocal(g.Sqrt(full)), gradient);
        next = [undefined, undefined, full];
      }
      const rms = g.Sqrt(g.ReduceMean(g.Mul(update, update), undefined, false));
      update = g.Div(update, g.Max(g.Div(rms, clip), g.constant(1, dt)));
      const rate = scalarAs(g, lr, dt);
      const decayed = weightDecay !== 0 ? g.Sub(param, g.Mul(param, g.Mul(rate, weightDecay))) : param;
      return { param: g.Sub(decayed, g.Mul(update, rate)), state: next as Tensor[] };
    },
  };
}

/** The shape of a parameter's state tensor `key`, or undefined when the optimizer keeps none for it. */
export function stateShapeOf(optimizer: GraphOptimizer, key: string, param: { name?: string; shape: readonly (number | string)[] }): readonly number[] | undefined {
  if (!param.shape.every((d): d is number => typeof d === 'number')) throw new GraphError(`optimizer state needs a parameter of static shape`);
  return optimizer.stateShape ? optimizer.stateShape(key, param.shape, param.name) : param.shape;
}

function graphOptimizer(spec: OptimizerSpec | GraphOptimizer): GraphOptimizer {
  if ('update' in spec) return spec;
  return spec.kind === 'sgd' ? sgdOptimizer(spec) : adamOptimizer({ decoupled: spec.kind === 'adamw', betas: spec.betas, eps: spec.eps });
}

export interface ParamGroup {
  params: readonly Tensor[];
  weightDecay?: number;
}

export interface OptimizerPlanOptions {
  /** A built-in spec, or any GraphOptimizer (e.g. one an optimizer plugin contributes). */
  optimizer: OptimizerSpec | GraphOptimizer;
  groups: readonly ParamGroup[];
  /** Gradient of each parameter (e.g. from grad()), keyed by the parameter tensor. */
  grads: ReadonlyMap<Tensor, Tensor>;
  /** Clip the global gradient norm first (torch's max_grad_norm); the norm is output as 'grad_norm'. */
  maxGradNorm?: number;
  /** dtype of the lr and step inputs; default float32. */
  scalarDType?: DType;
}

/** One value that goes round the loop: fed as `input`, produced as `output`, fed back next step. */
export interface LoopVariable {
  input: Tensor;
  output: string;
}

export interface OptimizerPlan {
  /** One learning-rate input per group: 'lr.0', 'lr.1', ... */
  lrInputs: Tensor[];
  /** The 1-based step input, 'step'. */
  stepInput: Tensor;
  /** Parameters and optimizer state: feed `input`, read `output`, feed it back. */
  loop: LoopVariable[];
  /** Zero-initialized optimizer state feeds (parameters are not included). */
  initialState(): Record<string, HostTensor>;
  /** Copies each loop output of a run into the feeds for the next step. */
  feedBack(feeds: Record<string, unknown>, results: Record<string, HostTensor>): void;
}

/**
 * Appends a complete optimizer update (optional clipping, per-group lr inputs, per-param state inputs/outputs) and
 * marks the new parameters and states as graph outputs named '<input>.next'. Parameters must be graph inputs.
 */
export function applyOptimizer(g: Graph, options: OptimizerPlanOptions): OptimizerPlan {
  const dt = options.scalarDType ?? 'float32';
  const all = options.groups.flatMap((grp) => grp.params);
  for (const p of all) {
    if (p.kind !== 'input') throw new GraphError(`parameter ${p} must be a graph input so its updated value can be fed back`);
    if (!options.grads.has(p)) throw new GraphError(`no gradient given for parameter ${p}`);
  }
  let grads = all.map((p) => options.grads.get(p)!);
  if (options.maxGradNorm !== undefined) {
    const clipped = clipGradNorm(grads, options.maxGradNorm);
    grads = clipped.grads;
    g.output(clipped.totalNorm, 'grad_norm');
  }
  const gradOf = new Map(all.map((p, i) => [p, grads[i]]));
  const lrInputs = options.groups.map((_, i) => g.input(`lr.${i}`, dt, []));
  const stepInput = g.input('step', dt, []);
  const loop: LoopVariable[] = [];
  const state: Tensor[] = [];
  const stateInput = (p: Tensor, key: string, shape: readonly number[]) => {
    const t = g.input(`${p.name}.${key}`, p.dtype, [...shape]);
    state.push(t);
    return t;
  };
  const keep = (input: Tensor, value: Tensor) => {
    const output = `${input.name}.next`;
    g.output(value, output);
    loop.push({ input, output });
  };

  const optimizer = graphOptimizer(options.optimizer);
  options.groups.forEach((grp, gi) => {
    for (const p of grp.params) {
      const states = optimizer.stateNames.map((key) => {
        const shape = stateShapeOf(optimizer, key, p);
        return shape ? stateInput(p, key, shape) : undefined;
      });
      const r = optimizer.update(g, { param: p, grad: gradOf.get(p)!, state: states as Tensor[], lr: lrInputs[gi], step: stepInput, weightDecay: grp.weightDecay ?? 0 });
      keep(p, r.param);
      states.forEach((input, i) => input && keep(input, r.state[i]));
    }
  });

  return {
    lrInputs,
    stepInput,
    loop,
    initialState() {
      const out: Record<string, HostTensor> = {};
      for (const t of state) {
        if (!isStatic(t.shape)) throw new GraphError(`cannot zero-initialize ${t}: its shape is symbolic`);
        const dims = [...t.shape];
        out[t.name] = { dtype: t.dtype, dims, data: new (arrayClassOf(t.dtype))(dims.reduce((p, q) => p * q, 1)) };
      }
      return out;
    },
    feedBack(feeds, results) {
      for (const v of loop) {
        const r = results[v.output];
        if (!r) throw new GraphError(`feedBack: the run did not fetch '${v.output}'`);
        feeds[v.input.name] = r;
      }
    },
  };
}
