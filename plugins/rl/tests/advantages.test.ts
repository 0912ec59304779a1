import { generalizedAdvantages, groupAdvantages, klPenaltyRewards, maskedMean, maskedVar, maskedWhiten, RunningMoments } from '../src/advantages';
import { AdaptiveKlController, FixedKlController } from '../src/kl-controller';

const close = (actual: readonly number[], expected: readonly number[], digits = 10) => {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((a, i) => expect(a).toBeCloseTo(expected[i], digits));
};

describe('masked whitening (TRL masked_whiten)', () => {
  const values = [[1, 2, 3], [4, 100, -50]];
  const mask = [[1, 1, 1], [1, 0, 0]];

  it('uses only masked values: mean 2.5, unbiased variance 5/3', () => {
    expect(maskedMean(values, mask)).toBeCloseTo(2.5, 12);
    // squared deviations 2.25, 0.25, 0.25, 2.25: mean 1.25, times 4 / 3
    expect(maskedVar(values, mask)).toBeCloseTo(5 / 3, 12);
    expect(maskedVar(values, mask, false)).toBeCloseTo(1.25, 12);
  });

  it('centres and scales by 1 / sqrt(var + 1e-8); shift_mean false adds the mean back', () => {
    const s = 1 / Math.sqrt(5 / 3 + 1e-8);
    const whitened = maskedWhiten(values, mask);
    close(whitened[0], [-1.5 * s, -0.5 * s, 0.5 * s]);
    close(whitened[1].slice(0, 1), [1.5 * s]);
    close(maskedWhiten(values, mask, false)[0], [-1.5 * s + 2.5, -0.5 * s + 2.5, 0.5 * s + 2.5]);
  });

  it('refuses an unbiased variance of a single value', () => {
    expect(() => maskedVar([[1, 2]], [[1, 0]])).toThrow(/at least 2/);
  });
});

describe('GAE (TRL compute_advantages)', () => {
  // gamma 0.9, lam 0.8, so gamma * lam = 0.72.
  const rewards = [[1, 0, 2], [1, 3, 7]];
  const values = [[0.5, 1, 1.5], [0.2, 0.4, 9]];
  const mask = [[1, 1, 1], [1, 1, 0]];

  it('runs the recursion backwards per row, with values and rewards masked and V past the end 0', () => {
    const { advantages, returns } = generalizedAdvantages(rewards, values, mask, { gamma: 0.9, lam: 0.8 });
    // row 0: d2 = 2 - 1.5 = 0.5; d1 = 0 + 0.9 * 1.5 - 1 = 0.35, A1 = 0.35 + 0.72 * 0.5 = 0.71;
    //        d0 = 1 + 0.9 * 1 - 0.5 = 1.4, A0 = 1.4 + 0.72 * 0.71 = 1.9112
    // row 1 (last position padding: r = V = 0 there): A2 = 0; d1 = 3 - 0.4 = 2.6 = A1; d0 = 1 + 0.36 - 0.2 = 1.16,
    //        A0 = 1.16 + 0.72 * 2.6 = 3.032
    const raw = [1.9112, 0.71, 0.5, 3.032, 2.6];
    close(returns[0], [1.9112 + 0.5, 0.71 + 1, 0.5 + 1.5]);
    close(returns[1], [3.032 + 0.2, 2.6 + 0.4, 0]);
    const mean = raw.reduce((a, b) => a + b, 0) / 5;
    const variance = raw.reduce((a, v) => a + (v - mean) ** 2, 0) / 4;
    const w = (a: number) => (a - mean) / Math.sqrt(variance + 1e-8);
    close(advantages[0], [w(1.9112), w(0.71), w(0.5)]);
    close(advantages[1].slice(0, 2), [w(3.032), w(2.6)]);
  });

  it('gamma 1, lam 1: advantages are reward-to-go minus the value', () => {
    const { returns } = generalizedAdvantages([[1, 2, 3]], [[0, 0, 0]], [[1, 1, 1]], { gamma: 1, lam: 1 });
    close(returns[0], [6, 5, 3]);
  });

  it('ppo_whiten_rewards whitens the masked rewards first, keeping their mean', () => {
    const plain = generalizedAdvantages([[1, 3]], [[0, 0]], [[1, 1]], { gamma: 1, lam: 1, whitenRewards: true });
    // rewards [1, 3]: mean 2, unbiased var 2: whitened without shift [2 - 1/sqrt(2), 2 + 1/sqrt(2)]
    const s = 1 / Math.sqrt(2 + 1e-8);
    close(plain.returns[0], [2 - s + 2 + s, 2 + s]);
  });
});

describe('KL-penalised rewards (TRL compute_rewards, kl_penalty kl)', () => {
  it('gives -kl_coef (logp - ref_logp) per token and adds the score at the last response token', () => {
    const { rewards, kl } = klPenaltyRewards([2], [[-1, -2, -3]], [[-1.5, -2, -2]], [[1, 1, 0]], 0.1);
    close(kl[0], [0.5, 0, -1]);
    close(rewards[0], [-0.05, 2, 0.1]);
  });
});

describe('KL controllers (TRL)', () => {
  it('adaptive: clips the proportional error to ±0.2 and multiplies by 1 + error * n_steps / horizon', () => {
    const above = new AdaptiveKlController(0.2, 6, 10000);
    above.update(9, 256); // 9 / 6 - 1 = 0.5 -> 0.2
    expect(above.value).toBeCloseTo(0.2 * (1 + (0.2 * 256) / 10000), 14);
    const below = new AdaptiveKlController(0.2, 6, 10000);
    below.update(5.4, 256); // 5.4 / 6 - 1 = -0.1
    expect(below.value).toBeCloseTo(0.2 * (1 - (0.1 * 256) / 10000), 14);
    const far = new AdaptiveKlController(0.2, 6, 10000);
    far.update(0, 100); // -1 -> -0.2
    expect(far.value).toBeCloseTo(0.2 * (1 - 0.002), 14);
    expect(far.state()).toEqual({ kind: 'adaptive', value: far.value });
  });

  it('fixed: never changes', () => {
    const fixed = new FixedKlController(0.05);
    fixed.update();
    expect(fixed.value).toBe(0.05);
  });
});

describe('GRPO advantages (TRL GRPOTrainer)', () => {
  it('normalises each group of num_generations rewards by its mean and unbiased std + 1e-4', () => {
    const { advantages, groupStd } = groupAdvantages([1, 0, 0, 1, 2, 2, 2, 2], 4);
    const std = Math.sqrt((4 * 0.25) / 3);
    const a = 0.5 / (std + 1e-4);
    close(advantages, [a, -a, -a, a, 0, 0, 0, 0]);
    close(groupStd, [std, 0]);
  });

  it('refuses rewards that do not split into groups', () => {
    expect(() => groupAdvantages([1, 2, 3], 2)).toThrow(/groups of 2/);
  });
});

describe('RunningMoments (TRL, ppo_score_norm)', () => {
  it('merges batches into the running mean and unbiased std of everything seen', () => {
    const moments = new RunningMoments();
    const first = moments.update([1, 2, 3]);
    expect(first.mean).toBeCloseTo(2, 12);
    expect(first.std).toBeCloseTo(1, 12);
    moments.update([10, 20]);
    const all = [1, 2, 3, 10, 20];
    const mean = all.reduce((a, b) => a + b, 0) / 5;
    expect(moments.mean).toBeCloseTo(mean, 8);
    expect(moments.std).toBeCloseTo(Math.sqrt(all.reduce((a, v) => a + (v - mean) ** 2, 0) / 4), 8);
    close(moments.normalize([mean]), [0]);
  });
});
