// Host-side arithmetic of the rollout buffers, as TRL computes it: per-token rewards with a KL penalty, GAE,
// masked whitening, GRPO's group-normalised advantages and a running mean / std of scores. Rows are arrays of
// per-token values over the response positions; a mask marks the real (not padding) response tokens.

/** Per-row values over response positions; `mask[r][t]` is 1 for a real response token, 0 for padding. */
export type Rows = readonly (readonly number[])[];

function check(values: Rows, mask: Rows, what: string): void {
  if (values.length !== mask.length || values.some((row, r) => row.length !== mask[r].length)) {
    throw new RangeError(`${what}: values and mask differ in shape`);
  }
}

/** sum(values * mask) / sum(mask) over every row (TRL's masked_mean without an axis). */
export function maskedMean(values: Rows, mask: Rows): number {
  check(values, mask, 'maskedMean');
  let sum = 0;
  let count = 0;
  values.forEach((row, r) => row.forEach((v, t) => {
    sum += v * mask[r][t];
    count += mask[r][t];
  }));
  return sum / count;
}

/** The masked variance, unbiased (Bessel's correction over the masked count) as TRL's masked_var. */
export function maskedVar(values: Rows, mask: Rows, unbiased = true): number {
  const mean = maskedMean(values, mask);
  const centered = values.map((row) => row.map((v) => (v - mean) ** 2));
  const variance = maskedMean(centered, mask);
  if (!unbiased) return variance;
  const count = mask.reduce((sum, row) => sum + row.reduce((a, b) => a + b, 0), 0);
  if (count < 2) throw new RangeError('maskedVar: the unbiased variance needs at least 2 masked values (raise the batch size)');
  return (variance * count) / (count - 1);
}

/**
 * TRL's masked_whiten: (values - mean) / sqrt(var + 1e-8) with the masked mean and unbiased variance; with
 * `shiftMean` false the mean is added back (only the scale changes). Padding positions are whitened too (TRL does
 * not mask the output); callers multiply by the mask where it matters.
 */
export function maskedWhiten(values: Rows, mask: Rows, shiftMean = true): number[][] {
  const mean = maskedMean(values, mask);
  const scale = 1 / Math.sqrt(maskedVar(values, mask) + 1e-8);
  return values.map((row) => row.map((v) => (v - mean) * scale + (shiftMean ? 0 : mean)));
}

/**
 * TRL's compute_rewards (kl_penalty 'kl'): per token -klCoef * (logp - ref_logp), plus the sequence's score at its
 * last real response token. Returns the rewards and the per-token KL (logp - ref_logp) for the metrics.
 */
export function klPenaltyRewards(
  scores: readonly number[],
  logps: Rows,
  refLogps: Rows,
  mask: Rows,
  klCoef: number,
): { rewards: number[][]; kl: number[][]; nonScoreRewards: number[][] } {
  check(logps, mask, 'klPenaltyRewards');
  check(refLogps, mask, 'klPenaltyRewards');
  const kl = logps.map((row, r) => row.map((v, t) => v - refLogps[r][t]));
  const nonScoreRewards = kl.map((row) => row.map((v) => -klCoef * v));
  const rewards = nonScoreRewards.map((row, r) => {
    const out = row.slice();
    const last = mask[r].lastIndexOf(1);
    if (last < 0) throw new RangeError(`klPenaltyRewards: row ${r} has no response token`);
    out[last] += scores[r];
    return out;
  });
  return { rewards, kl, nonScoreRewards };
}

/**
 * Generalised advantage estimation as TRL's PPOTrainer.compute_advantages: values and rewards are masked, optionally
 * the rewards whitened without shifting the mean (ppo_whiten_rewards), then per row backwards
 * delta_t = r_t + gamma V_{t+1} - V_t (V past the end 0), A_t = delta_t + gamma lam A_{t+1}; returns = A + V; the
 * advantages are whitened over the masked tokens of the whole batch.
 */
export function generalizedAdvantages(
  rewards: Rows,
  values: Rows,
  mask: Rows,
  options: { gamma: number; lam: number; whitenRewards?: boolean },
): { advantages: number[][]; returns: number[][] } {
  check(rewards, mask, 'generalizedAdvantages');
  check(values, mask, 'generalizedAdvantages');
  const maskedValues = values.map((row, r) => row.map((v, t) => v * mask[r][t]));
  let maskedRewards = rewards.map((row, r) => row.map((v, t) => v * mask[r][t]));
  if (options.whitenRewards) maskedRewards = maskedWhiten(maskedRewards, mask, false);
  const raw = maskedRewards.map((row, r) => {
    const out = new Array<number>(row.length).fill(0);
    let lastGae = 0;
    for (let t = row.length - 1; t >= 0; t--) {
      const next = t < row.length - 1 ? maskedValues[r][t + 1] : 0;
      const delta = row[t] + options.gamma * next - maskedValues[r][t];
      lastGae = delta + options.gamma * options.lam * lastGae;
      out[t] = lastGae;
    }
    return out;
  });
  const returns = raw.map((row, r) => row.map((a, t) => a + maskedValues[r][t]));
  return { advantages: maskedWhiten(raw, mask), returns };
}

/**
 * GRPO's advantages (TRL's GRPOTrainer, scale_rewards on): rewards come in groups of `groupSize` consecutive
 * completions of one prompt; each becomes (r - group mean) / (group std + 1e-4), std unbiased as torch's.
 */
export function groupAdvantages(rewards: readonly number[], groupSize: number): { advantages: number[]; groupStd: number[] } {
  if (!Number.isInteger(groupSize) || groupSize < 1 || rewards.length % groupSize !== 0) {
    throw new RangeError(`groupAdvantages: ${rewards.length} rewards do not split into groups of ${groupSize}`);
  }
  const advantages: number[] = [];
  const groupStd: number[] = [];
  for (let start = 0; start < rewards.length; start += groupSize) {
    const group = rewards.slice(start, start + groupSize);
    const mean = group.reduce((a, b) => a + b, 0) / groupSize;
    // torch.std of one element is NaN; TRL's group of 1 then gives NaN advantages, which we refuse earlier.
    const std = groupSize > 1 ? Math.sqrt(group.reduce((a, v) => a + (v - mean) ** 2, 0) / (groupSize - 1)) : 0;
    for (const r of group) advantages.push((r - mean) / (std + 1e-4));
    groupStd.push(std);
  }
  return { advantages, groupStd };
}

/** Plain mean and unbiased std of numbers (0 for fewer than 2). */
export function meanStd(values: readonly number[]): { mean: number; std: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const std = values.length > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1)) : 0;
  return { mean, std };
}

/** The state of RunningMoments, as checkpointed. */
export interface RunningMomentsState {
  readonly mean: number;
  readonly std: number;
  readonly var: number;
  readonly count: number;
}

/**
 * TRL's RunningMoments (use_score_scaling / use_score_norm, LLaMA-Factory's ppo_score_norm): a running mean and
 * standard deviation of the scores seen so far, merged batch by batch (Chan et al.); `update` returns the batch's own
 * mean and unbiased std.
 */
export class RunningMoments {
  mean = 0;
  std = 1;
  var = 1;
  count = 1e-24;

  update(values: readonly number[]): { mean: number; std: number } {
    const n = values.length;
    const batchMean = values.reduce((a, b) => a + b, 0) / n;
    const batchVar = values.reduce((a, v) => a + (v - batchMean) ** 2, 0) / n;
    const delta = batchMean - this.mean;
    const total = this.count + n;
    const newSum = this.var * this.count + batchVar * n + ((delta * delta * this.count * n) / total);
    this.mean += (delta * n) / total;
    this.var = newSum / total;
    this.std = Math.sqrt((this.var * total) / (total - 1));
    this.count = total;
    return { mean: batchMean, std: Math.sqrt((batchVar * n) / (n - 1)) };
  }

  /** (x - mean) / (std + eps) (ppo_score_norm), with float32's eps as TRL uses for float32 scores. */
  normalize(values: readonly number[]): number[] {
    const eps = 1.1920928955078125e-7;
    return values.map((v) => (v - this.mean) / (this.std + eps));
  }

  state(): RunningMomentsState {
    return { mean: this.mean, std: this.std, var: this.var, count: this.count };
  }

  restore(state: RunningMomentsState): void {
    Object.assign(this, state);
  }
}
