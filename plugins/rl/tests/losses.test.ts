import { grpoLoss, ppoPolicyLoss, ppoValueLoss } from '../src/losses';
import { runGraph } from './helpers/run-graph';

const close = (a: number, b: number, digits = 12) => expect(a).toBeCloseTo(b, digits);
const clip = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

describe('PPO policy loss (TRL)', () => {
  // ratios exp(logp - old): e^0.5 (clipped at 1.2), e^-0.5 (clipped at 0.8), 1, and a padding token.
  const logps = [[-1.0, -2.5], [-3.0, -9]];
  const oldLogps = [[-1.5, -2.0], [-3.0, 0]];
  const advantages = [[1.0, 2.0], [-0.5, 5]];
  const mask = [[1, 1], [1, 0]];

  it('is the masked mean of max(-A r, -A clip(r, 1 - c, 1 + c)); clipfrac counts the clipped side winning', async () => {
    const out = await runGraph({ logps, oldLogps, advantages, mask }, (x) => {
      const loss = ppoPolicyLoss({ logps: x.logps, oldLogps: x.oldLogps, advantages: x.advantages, mask: x.mask, cliprange: 0.2 });
      return { loss: loss.loss, clipfrac: loss.clipfrac, approxkl: loss.approxkl, policykl: loss.policykl };
    }, ['logps']);
    const r = [Math.exp(0.5), Math.exp(-0.5), 1];
    const a = [1, 2, -0.5];
    const terms = r.map((ri, i) => Math.max(-a[i] * ri, -a[i] * clip(ri, 0.8, 1.2)));
    // token 0: -1.6487 vs -1.2 -> -1.2 (clipped side); token 1: -1.2131 vs -1.6 -> -1.2131 (unclipped); token 2: 0.5 both
    close(out.loss[0], (terms[0] + terms[1] + terms[2]) / 3);
    close(out.clipfrac[0], 1 / 3);
    close(out.approxkl[0], (0.5 * (0.25 + 0.25 + 0)) / 3);
    close(out.policykl[0], (-0.5 + 0.5 + 0) / 3);
    // d/dlogp: 0 where the clipped term wins (flat), -A r / 3 where the unclipped one does, 0 on padding.
    const grads = out['grad:logps'];
    close(grads[0], 0);
    close(grads[1], (-2 * Math.exp(-0.5)) / 3);
    close(grads[2], 0.5 / 3);
    close(grads[3], 0);
  });
});

describe('PPO value loss (TRL)', () => {
  it('is 0.5 * masked mean of max((v - R)^2, (clip(v, old ± c) - R)^2)', async () => {
    const values = [[1.0, 0.0, 4.0]];
    const oldValues = [[0.5, 0.1, 0.0]];
    const returns = [[2.0, -1.0, 9.0]];
    const mask = [[1, 1, 0]];
    const out = await runGraph({ values, oldValues, returns, mask }, (x) => {
      const loss = ppoValueLoss({ values: x.values, oldValues: x.oldValues, returns: x.returns, mask: x.mask, cliprangeValue: 0.2 });
      return { loss: loss.loss, clipfrac: loss.clipfrac, vpred: loss.vpred, error: loss.error };
    }, ['values']);
    // token 0: v 1 clipped to 0.7: (1 - 2)^2 = 1 vs (0.7 - 2)^2 = 1.69 -> 1.69 (clipped side)
    // token 1: v 0 within 0.1 ± 0.2: 1 vs 1 -> 1
    close(out.loss[0], 0.5 * ((1.69 + 1) / 2));
    close(out.clipfrac[0], 0.5);
    close(out.vpred[0], 0.5);
    close(out.error[0], (1 + 1) / 2);
    // token 0's clipped value is flat in v; token 1: 0.5 * 2 (v - R) / 2 = 0.5
    close(out['grad:values'][0], 0);
    close(out['grad:values'][1], 0.5);
    close(out['grad:values'][2], 0);
  });
});

describe('GRPO loss (TRL GRPOTrainer, loss_type grpo)', () => {
  const logps = [[-1.0, -2.0, -0.5], [-1.0, -1.0, -1.0]];
  const oldLogps = [[-1.0, -2.5, -0.5], [-0.5, -1.0, -1.0]];
  const refLogps = [[-1.2, -2.0, -0.3], [-1.0, -2.0, -1.0]];
  const advantages = [1.5, -1.0];
  const mask = [[1, 1, 0], [1, 1, 1]];
  const k3 = (ref: number, logp: number) => Math.exp(ref - logp) - (ref - logp) - 1;

  it('averages -min(r A, clip(r) A) + beta k3 over each completion, then over completions', async () => {
    const out = await runGraph({ logps, oldLogps, refLogps, advantages, mask }, (x) => {
      const loss = grpoLoss({ logps: x.logps, oldLogps: x.oldLogps, refLogps: x.refLogps, advantages: x.advantages, mask: x.mask, epsilon: 0.2, beta: 0.04 });
      return { loss: loss.loss, kl: loss.kl!, clipRatio: loss.clipRatio };
    });
    const token = (r: number, a: number, ref: number, logp: number) => -Math.min(r * a, clip(r, 0.8, 1.2) * a) + 0.04 * k3(ref, logp);
    // row 0: ratios 1 and e^0.5 (clipped to 1.2 for A > 0); row 1: e^-0.5 (A < 0: min(-0.607, -0.8) = -0.8, clipped), 1, 1
    const row0 = (token(1, 1.5, -1.2, -1) + token(Math.exp(0.5), 1.5, -2, -2)) / 2;
    const row1 = (token(Math.exp(-0.5), -1, -1, -1) + token(1, -1, -2, -1) + token(1, -1, -1, -1)) / 3;
    close(out.loss[0], (row0 + row1) / 2);
    close(out.kl[0], (k3(-1.2, -1) + k3(-2, -2) + k3(-1, -1) + k3(-2, -1) + k3(-1, -1)) / 5);
    close(out.clipRatio[0], 2 / 5);
  });

  it('with beta 0 reads no reference and logs no kl', async () => {
    const out = await runGraph({ logps, oldLogps, advantages, mask }, (x) => {
      const loss = grpoLoss({ logps: x.logps, oldLogps: x.oldLogps, advantages: x.advantages, mask: x.mask, epsilon: 0.2, beta: 0 });
      expect(loss.kl).toBeUndefined();
      return { loss: loss.loss };
    });
    const row0 = (-1.5 + -1.2 * 1.5) / 2;
    const row1 = (0.8 + 1 + 1) / 3;
    close(out.loss[0], (row0 + row1) / 2);
  });
});

describe('GRPO loss_type (TRL)', () => {
  const logps = [[-1.0, -2.0, -0.5], [-1.0, -1.0, -1.0]];
  const oldLogps = logps;
  const advantages = [1.5, -1.0];
  const mask = [[1, 1, 0], [1, 1, 1]];

  it('bnpo averages over every completion token; dr_grpo divides the sum by rows x max_completion_length', async () => {
    // ratio 1 everywhere: per-token loss -A; sums: row 0 -1.5 x 2 = -3, row 1 +1 x 3 = 3.
    for (const [lossType, want] of [['grpo', (-1.5 + 1) / 2], ['bnpo', 0 / 5], ['dr_grpo', 0 / (2 * 8)]] as const) {
      const out = await runGraph({ logps, oldLogps, advantages, mask }, (x) => ({
        loss: grpoLoss({ logps: x.logps, oldLogps: x.oldLogps, advantages: x.advantages, mask: x.mask, epsilon: 0.2, beta: 0, lossType, maxCompletionLength: 8 }).loss,
      }), ['logps']);
      close(out.loss[0], want);
      // d/dlogp of a token: -A / (row tokens x rows) for grpo, -A / 5 for bnpo, -A / 16 for dr_grpo
      const denom = lossType === 'grpo' ? 2 * 2 : lossType === 'bnpo' ? 5 : 16;
      close(out['grad:logps'][0], -1.5 / denom);
      close(out['grad:logps'][3], lossType === 'grpo' ? 1 / (3 * 2) : 1 / denom);
    }
  });
});
