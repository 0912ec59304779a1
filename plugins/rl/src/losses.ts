import type { Tensor } from '@tunekit/graph';

// The policy-gradient losses as graph code, over response positions: every per-token tensor is [rows, T] and
// `mask` [rows, T] float marks real response tokens. Rollout quantities (old log-probs, old values, advantages,
// returns, reference log-probs) are constants: their gradient is stopped here whatever the caller feeds.

/** sum(x * mask) / sum(mask), a scalar (TRL's masked_mean). */
export function maskedMean(x: Tensor, mask: Tensor): Tensor {
  const g = x.graph;
  return g.Div(g.ReduceSum(g.Mul(x, mask), undefined, false), g.ReduceSum(mask, undefined, false));
}

/** min(max(x, lo), hi) elementwise. */
function clamp(x: Tensor, lo: Tensor | number, hi: Tensor | number): Tensor {
  const g = x.graph;
  return g.Min(g.Max(x, lo), hi);
}

/** 1 where a > b, float. */
function greater(a: Tensor, b: Tensor): Tensor {
  const g = a.graph;
  return g.Cast(g.Greater(a, b), a.dtype);
}

export interface PolicyLossInputs {
  /** [rows, T] log-probs of the response tokens under the policy being trained. */
  readonly logps: Tensor;
  /** [rows, T] the same at rollout time. */
  readonly oldLogps: Tensor;
  /** [rows, T] per-token advantages. */
  readonly advantages: Tensor;
  readonly mask: Tensor;
  /** TRL's cliprange (epsilon). */
  readonly cliprange: number;
}

export interface PolicyLoss {
  readonly loss: Tensor;
  /** Fraction of tokens whose clipped term was the larger loss (ppo/policy/clipfrac). */
  readonly clipfrac: Tensor;
  /** 0.5 * mean((logp - old)^2) (ppo/policy/approxkl). */
  readonly approxkl: Tensor;
  /** mean(old - logp) (ppo/policy/policykl). */
  readonly policykl: Tensor;
}

/**
 * TRL's PPO policy loss: ratio = exp(logp - old); per token max(-A ratio, -A clip(ratio, 1 - c, 1 + c)), masked
 * mean over every response token of the batch.
 */
export function ppoPolicyLoss(x: PolicyLossInputs): PolicyLoss {
  const g = x.logps.graph;
  const old = g.StopGradient(x.oldLogps);
  const advantages = g.StopGradient(x.advantages);
  const ratio = g.Exp(g.Sub(x.logps, old));
  const unclipped = g.Neg(g.Mul(advantages, ratio));
  const clipped = g.Neg(g.Mul(advantages, clamp(ratio, 1 - x.cliprange, 1 + x.cliprange)));
  const diff = g.StopGradient(g.Sub(x.logps, old));
  return {
    loss: maskedMean(g.Max(unclipped, clipped), x.mask),
    clipfrac: g.StopGradient(maskedMean(greater(clipped, unclipped), x.mask)),
    approxkl: g.StopGradient(g.Mul(maskedMean(g.Mul(diff, diff), x.mask), 0.5)),
    policykl: g.StopGradient(maskedMean(g.Neg(diff), x.mask)),
  };
}

export interface ValueLossInputs {
  /** [rows, T] the value head's predictions being trained. */
  readonly values: Tensor;
  /** [rows, T] the predictions at rollout time. */
  readonly oldValues: Tensor;
  /** [rows, T] GAE returns (advantages + old values). */
  readonly returns: Tensor;
  readonly mask: Tensor;
  /** TRL's cliprange_value. */
  readonly cliprangeValue: number;
}

export interface ValueLoss {
  readonly loss: Tensor;
  /** ppo/val/clipfrac */
  readonly clipfrac: Tensor;
  /** ppo/val/vpred: the masked mean prediction. */
  readonly vpred: Tensor;
  /** ppo/val/error: masked mean of (vpred - returns)^2. */
  readonly error: Tensor;
}

/**
 * TRL's clipped value loss: vclipped = clip(v, old - c, old + c); 0.5 * masked mean of
 * max((v - R)^2, (vclipped - R)^2).
 */
export function ppoValueLoss(x: ValueLossInputs): ValueLoss {
  const g = x.values.graph;
  const old = g.StopGradient(x.oldValues);
  const returns = g.StopGradient(x.returns);
  const clipped = clamp(x.values, g.Sub(old, x.cliprangeValue), g.Add(old, x.cliprangeValue));
  const square = (t: Tensor) => g.Mul(t, t);
  const plain = square(g.Sub(x.values, returns));
  const clippedLoss = square(g.Sub(clipped, returns));
  return {
    loss: g.Mul(maskedMean(g.Max(plain, clippedLoss), x.mask), 0.5),
    clipfrac: g.StopGradient(maskedMean(greater(clippedLoss, plain), x.mask)),
    vpred: g.StopGradient(maskedMean(x.values, x.mask)),
    error: g.StopGradient(maskedMean(plain, x.mask)),
  };
}

export interface GrpoLossInputs {
  /** [rows, T] log-probs of the completion tokens under the policy being trained. */
  readonly logps: Tensor;
  /** [rows, T] the same at rollout time. */
  readonly oldLogps: Tensor;
  /** [rows, T] under the reference model; only read when beta != 0. */
  readonly refLogps?: Tensor;
  /** [rows] one advantage per completion. */
  readonly advantages: Tensor;
  readonly mask: Tensor;
  readonly epsilon: number;
  /** Upper clip epsilon (TRL's epsilon_high); default epsilon. */
  readonly epsilonHigh?: number;
  readonly beta: number;
  /**
   * How token losses are averaged (TRL's loss_type): `grpo` per completion then over completions; `bnpo` over every
   * completion token of the batch; `dr_grpo` summed and divided by rows x maxCompletionLength.
   */
  readonly lossType?: GrpoLossType;
  /** dr_grpo's constant length (max_completion_length). */
  readonly maxCompletionLength?: number;
}

export type GrpoLossType = 'grpo' | 'bnpo' | 'dr_grpo';

export interface GrpoLoss {
  readonly loss: Tensor;
  /** Masked mean of the k3 KL estimate (kl), when beta != 0. */
  readonly kl?: Tensor;
  /** Fraction of tokens where the clipped term won the min (clip_ratio). */
  readonly clipRatio: Tensor;
}

/**
 * TRL's GRPOTrainer loss: ratio = exp(logp - old); per token -min(ratio A, clip(ratio, 1 - e, 1 + e_high) A) +
 * beta (exp(ref - logp) - (ref - logp) - 1); averaged as loss_type says (grpo: over each completion's tokens, then
 * over completions).
 */
export function grpoLoss(x: GrpoLossInputs): GrpoLoss {
  const g = x.logps.graph;
  const old = g.StopGradient(x.oldLogps);
  const advantages = g.Unsqueeze(g.StopGradient(x.advantages), [1]);
  const ratio = g.Exp(g.Sub(x.logps, old));
  const clippedRatio = clamp(ratio, 1 - x.epsilon, 1 + (x.epsilonHigh ?? x.epsilon));
  const unclipped = g.Mul(ratio, advantages);
  const clipped = g.Mul(clippedRatio, advantages);
  let perToken = g.Neg(g.Min(unclipped, clipped));
  let kl: Tensor | undefined;
  if (x.beta !== 0) {
    if (!x.refLogps) throw new RangeError('grpoLoss: beta != 0 needs the reference log-probs');
    const delta = g.Sub(g.StopGradient(x.refLogps), x.logps);
    const perTokenKl = g.Sub(g.Sub(g.Exp(delta), delta), 1);
    perToken = g.Add(perToken, g.Mul(perTokenKl, x.beta));
    kl = g.StopGradient(maskedMean(perTokenKl, x.mask));
  }
  const masked = g.Mul(perToken, x.mask);
  let loss: Tensor;
  if (x.lossType === 'bnpo') loss = g.Div(g.ReduceSum(masked, undefined, false), g.Max(g.ReduceSum(x.mask, undefined, false), 1));
  else if (x.lossType === 'dr_grpo') {
    if (!x.maxCompletionLength) throw new RangeError('grpoLoss: dr_grpo needs maxCompletionLength');
    const rows = g.Cast(g.Shape(x.mask, 0, 1), masked.dtype);
    loss = g.Div(g.ReduceSum(masked, undefined, false), g.Mul(g.Squeeze(rows, [0]), x.maxCompletionLength));
  } else {
    const rowTokens = g.Max(g.ReduceSum(x.mask, [1], false), 1);
    loss = g.ReduceMean(g.Div(g.ReduceSum(masked, [1], false), rowTokens), undefined, false);
  }
  // Clipped where the clipped term is the smaller one (its gradient is then zero), as TRL's is_clipped.
  return { loss, kl, clipRatio: g.StopGradient(maskedMean(greater(unclipped, clipped), x.mask)) };
}
