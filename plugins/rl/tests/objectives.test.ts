import * as path from 'node:path';
import { Graph } from '@tunekit/graph';
import { CausalLM, causalLMInputs, createRng, LoraAdapter } from '@tunekit/models';
import { ValueHead } from '@tunekit/plugin-preference';
import { GradProgram } from '@tunekit/trainer';
import { RolloutRows } from '../src/batches';
import { grpoObjective, RolloutFeeds } from '../src/grpo';
import { ppoObjective } from '../src/ppo';
import { PolicySampler, type RolloutSettings } from '../src/rollout';
import { RowScorer } from '../src/scorer';

// The stages' training graphs on real rollouts of llama-micro with its LoRA adapter: fed the rollout's own log-probs
// and values (ratio 1, nothing clipped), the losses reduce to what the formulas give by hand.
const fixture = path.resolve(__dirname, '..', '..', '..', '..', 'shared', 'fixtures', 'llama-micro');
const settings: RolloutSettings = { maxNewTokens: 6, temperature: 1, topP: 1, topK: 0, repetitionPenalty: 1, eosTokenIds: [2], logitScale: 1 };

function policy(): { model: CausalLM; values: Map<string, Float32Array> } {
  const model = CausalLM.load(path.join(fixture, 'model'));
  LoraAdapter.load(path.join(fixture, 'adapter'), model).apply(model, { trainable: true });
  const probe = new Graph('probe');
  model.forward(probe, causalLMInputs(probe));
  return { model, values: new Map(model.trainableParameters(probe).map((p) => [p.name, p.initial()])) };
}

async function rollouts(model: CausalLM, values: Map<string, Float32Array>): Promise<RolloutRows> {
  const sampler = await PolicySampler.create(model, { session: {}, padTokenId: 0 });
  try {
    return RolloutRows.of(await sampler.sample([[1, 40, 41], [1, 40, 41], [1, 7], [1, 7]], values, settings, createRng(9)), 0);
  } finally {
    await sampler.release();
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('the GRPO training graph', () => {
  it('at ratio 1 with the reference equal to the policy: loss = mean(-A), kl = 0, and the adapter gets a gradient', async () => {
    const { model, values } = policy();
    const rows = await rollouts(model, values);
    const advantages = [1, -1, 0.5, -0.5];
    const feeds = new RolloutFeeds();
    const logps = rows.spread(rows.completions.map((c) => c.logps));
    feeds.set(rows.batch, { response_mask: rows.maskFeed(), old_logps: logps, ref_logps: logps, advantages: { dtype: 'float32', dims: [4], data: Float32Array.from(advantages) } });
    const objective = grpoObjective({ epsilon: 0.2, beta: 0.04, lossType: 'grpo', rollout: settings }, feeds);
    const program = await GradProgram.create(model, objective, { session: {} });
    try {
      const result = await program.run(rows.batch, 1, values);
      expect(result.lossSum).toBeCloseTo(mean(advantages.map((a) => -a)), 4);
      expect(result.metrics.kl).toBeCloseTo(0, 5);
      expect(result.metrics.clip_ratio).toBe(0);
      const norm = [...result.grads.values()].reduce((sum, g) => sum + g.reduce((a, v) => a + v * v, 0), 0);
      expect(norm).toBeGreaterThan(0);
    } finally {
      await program.release();
    }
  });
});

describe('the PPO training graph', () => {
  it('trains the value head beside the adapter: loss = -mean(A) + vf_coef 0.5 mean((V - R)^2) at ratio 1', async () => {
    const { model, values } = policy();
    const rows = await rollouts(model, values);
    const head = ValueHead.init(model.config.hiddenSize, 3);
    const critic = await RowScorer.create(model, { session: {}, head: { valueHead: head, values: true } });
    const oldValues = rows.gather((await critic.run(rows, values)).values!);
    await critic.release();
    const advantages = rows.completions.map((c, r) => c.tokenIds.map((_, i) => (r % 2 ? -1 : 1) * (i + 1)));
    const returns = oldValues.map((row) => row.map((v) => v + 0.5));
    const feeds = new RolloutFeeds();
    feeds.set(rows.batch, {
      response_mask: rows.maskFeed(),
      old_logps: rows.spread(rows.completions.map((c) => c.logps)),
      advantages: rows.spread(advantages),
      old_values: rows.spread(oldValues),
      returns: rows.spread(returns),
    });
    const program = await GradProgram.create(model, ppoObjective({ cliprange: 0.2, cliprangeValue: 0.2, vfCoef: 0.1, rollout: settings }, head, feeds), { session: {} });
    try {
      expect(program.objectiveParameters).toEqual(['v_head.summary.weight', 'v_head.summary.bias']);
      const result = await program.run(rows.batch, 1, new Map([...values, ...program.objectiveParameters.map((name) => [name, program.initial(name)] as const)]));
      const policyLoss = -mean(advantages.flat());
      // returns are 0.5 above the values: each squared error 0.25, within the value clip range.
      expect(result.metrics['ppo/loss/policy']).toBeCloseTo(policyLoss, 4);
      expect(result.metrics['ppo/loss/value']).toBeCloseTo(0.5 * 0.25, 4);
      expect(result.lossSum).toBeCloseTo(policyLoss + 0.1 * 0.125, 4);
      expect(result.metrics['ppo/val/vpred']).toBeCloseTo(mean(oldValues.flat()), 4);
      expect(result.metrics['ppo/policy/clipfrac']).toBe(0);
      // d/d bias of 0.1 * 0.5 * mean((V - R)^2) = 0.1 * mean(V - R) = -0.05
      expect(result.grads.get('v_head.summary.bias')![0]).toBeCloseTo(-0.05, 4);
    } finally {
      await program.release();
    }
  });
});
