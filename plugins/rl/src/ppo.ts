import type { Batch, UnsupervisedExample } from '@tunekit/data';
import type { TokenizerLike } from '@tunekit/kernel';
import { createRng, type Rng } from '@tunekit/models';
import { ValueHead } from '@tunekit/plugin-preference';
import type { TrainingObjective } from '@tunekit/trainer';
import { generalizedAdvantages, klPenaltyRewards, meanStd, RunningMoments, type RunningMomentsState } from './advantages';
import { RolloutRows } from './batches';
import { RolloutFeeds } from './grpo';
import { AdaptiveKlController, FixedKlController, type KlController, type KlControllerState } from './kl-controller';
import type { RlAlgorithm, RlStepContext, RlStepResult } from './loop';
import { ppoPolicyLoss, ppoValueLoss } from './losses';
import type { RewardModel } from './reward-model';
import type { Completion, PolicySampler, RolloutSettings } from './rollout';
import { policyForward, type RowScorer } from './scorer';

export interface PpoSettings {
  /** Prompts per mini-batch (per_device_train_batch_size). */
  readonly miniBatchSize: number;
  /** Mini-batches per optimizer update (gradient_accumulation_steps). */
  readonly gradientAccumulationSteps: number;
  /** Updates per pass over the buffer (ppo_buffer_size). */
  readonly bufferSize: number;
  readonly ppoEpochs: number;
  readonly cliprange: number;
  readonly cliprangeValue: number;
  readonly vfCoef: number;
  readonly gamma: number;
  readonly lam: number;
  readonly whitenRewards: boolean;
  readonly scoreNorm: boolean;
  /** Initial KL coefficient (TRL init_kl_coef). */
  readonly klCoef: number;
  /** Adaptive KL control toward this KL (ppo_target); undefined: a fixed coefficient. */
  readonly target?: number;
  /** TRL's horizon of the adaptive controller. */
  readonly horizon: number;
  readonly rollout: RolloutSettings;
  readonly padTokenId: number;
  readonly seed: number;
}

/**
 * PPO's training graph over one mini-batch of rollouts: the policy's log-probs and the value head's predictions at
 * every completion position, the clipped policy loss plus vf_coef times the clipped value loss (TRL's PPOTrainer).
 * The head's tensors are the objective's own trainable parameters, saved beside the adapter (value_head.safetensors).
 */
export function ppoObjective(settings: Pick<PpoSettings, 'cliprange' | 'cliprangeValue' | 'vfCoef' | 'rollout'>, head: ValueHead, feeds: RolloutFeeds): TrainingObjective {
  return {
    build(g, model, context = {}) {
      const { inputs, mask, oldLogps, hiddenStates, logps } = policyForward(g, model, context, settings.rollout.logitScale);
      const advantages = g.input('advantages', 'float32', ['batch', 'seq']);
      const oldValues = g.input('old_values', 'float32', ['batch', 'seq']);
      const returns = g.input('returns', 'float32', ['batch', 'seq']);
      const { weight, bias } = head.parameters(g);
      const values = g.Reshape(ValueHead.scores(g.Reshape(hiddenStates, [-1, model.config.hiddenSize]), weight.tensor, bias.tensor), g.Shape(inputs.inputIds));
      const policy = ppoPolicyLoss({ logps, oldLogps, advantages, mask, cliprange: settings.cliprange });
      const value = ppoValueLoss({ values, oldValues, returns, mask, cliprangeValue: settings.cliprangeValue });
      const loss = g.Add(policy.loss, g.Mul(value.loss, settings.vfCoef));
      return {
        lossSum: loss,
        metrics: {
          'ppo/loss/policy': g.StopGradient(policy.loss),
          'ppo/loss/value': g.StopGradient(value.loss),
          'ppo/loss/total': g.StopGradient(loss),
          'ppo/policy/clipfrac': policy.clipfrac,
          'ppo/policy/approxkl': policy.approxkl,
          'ppo/policy/policykl': policy.policykl,
          'ppo/val/vpred': value.vpred,
          'ppo/val/error': value.error,
          'ppo/val/clipfrac': value.clipfrac,
        },
        parameters: [weight, bias],
      };
    },
    feeds: (batch) => feeds.of(batch),
    weight: () => 1,
    save: (dir, values) => head.save(dir, values),
  };
}

/** A permutation of 0..n-1 from `rng` (Fisher-Yates). */
function shuffled(n: number, rng: Rng): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** The per-row rollout quantities of one step, over completion tokens. */
interface Experience {
  readonly completion: Completion;
  readonly oldValues: number[];
  readonly advantages: number[];
  readonly returns: number[];
}

/**
 * PPO as LLaMA-Factory runs TRL's PPOTrainer: each step samples one completion per prompt of its buffer
 * (per_device_train_batch_size x gradient_accumulation_steps x ppo_buffer_size prompts), scores them with the reward
 * model (optionally normalised by running moments), takes the reference's log-probs and the value head's values,
 * turns the KL-penalised per-token rewards into GAE advantages, then runs ppo_epochs passes of shuffled mini-batches,
 * one optimizer update per gradient_accumulation_steps mini-batches; the KL coefficient adapts toward ppo_target.
 */
export class PpoAlgorithm implements RlAlgorithm {
  readonly objective: TrainingObjective;
  readonly progressMetrics = ['reward', 'objective/kl'];
  readonly plotted = ['reward'];
  private readonly feeds = new RolloutFeeds();
  private readonly kl: KlController;
  private readonly moments = new RunningMoments();

  constructor(
    private readonly settings: PpoSettings,
    head: ValueHead,
    private readonly sampler: PolicySampler,
    private readonly reference: RowScorer,
    /** The policy with its value head, forward only: the values at rollout time. */
    private readonly critic: RowScorer,
    private readonly rewardModel: RewardModel,
    private readonly tokenizer: TokenizerLike,
  ) {
    this.objective = ppoObjective(settings, head, this.feeds);
    this.kl = settings.target !== undefined ? new AdaptiveKlController(settings.klCoef, settings.target, settings.horizon) : new FixedKlController(settings.klCoef);
  }

  get promptsPerStep(): number {
    const s = this.settings;
    return s.miniBatchSize * s.gradientAccumulationSteps * s.bufferSize;
  }

  /** Samples one completion per prompt (in mini-batches) and scores it with the reward model. */
  private async rollout(prompts: readonly UnsupervisedExample[], values: ReadonlyMap<string, Float32Array>, rng: Rng) {
    const s = this.settings;
    const completions: Completion[] = [];
    const scores: number[] = [];
    for (let start = 0; start < prompts.length; start += s.miniBatchSize) {
      const chunk = await this.sampler.sample(prompts.slice(start, start + s.miniBatchSize).map((p) => Array.from(p.input_ids)), values, s.rollout, rng);
      const rows = RolloutRows.of(chunk, s.padTokenId);
      // LLaMA-Factory sends the api reward model the query and response decoded with their special tokens.
      const texts = chunk.map((c) => this.tokenizer.decode([...c.promptIds, ...c.tokenIds], { skipSpecialTokens: false }));
      scores.push(...(await this.rewardModel.score(rows, texts)));
      completions.push(...chunk);
    }
    return { completions, scores };
  }

  async step(prompts: readonly UnsupervisedExample[], context: RlStepContext): Promise<RlStepResult> {
    const s = this.settings;
    const { completions, scores } = await this.rollout(prompts, context.values(), context.rng);
    const rawScores = meanStd(scores);
    let used = scores;
    if (s.scoreNorm) {
      this.moments.update(scores);
      used = this.moments.normalize(scores);
    }

    // The reference's log-probs and the value head's values at rollout time, over the whole buffer.
    const rows = RolloutRows.of(completions, s.padTokenId);
    const refLogps = rows.gather((await this.reference.run(rows)).logps!);
    const oldValues = rows.gather((await this.critic.run(rows, context.values())).values!);
    const logps = completions.map((c) => [...c.logps]);
    const mask = completions.map((c) => c.tokenIds.map(() => 1));
    const { rewards, kl, nonScoreRewards } = klPenaltyRewards(used, logps, refLogps, mask, this.kl.value);
    // Rows are ragged; pad to one width for GAE and whitening over the masked tokens of the whole buffer.
    const width = Math.max(...mask.map((m) => m.length));
    const pad = (row: readonly number[]) => [...row, ...new Array<number>(width - row.length).fill(0)];
    const { advantages, returns } = generalizedAdvantages(rewards.map(pad), oldValues.map(pad), mask.map(pad), { gamma: s.gamma, lam: s.lam, whitenRewards: s.whitenRewards });
    const experience: Experience[] = completions.map((completion, r) => ({
      completion,
      oldValues: oldValues[r],
      advantages: advantages[r].slice(0, completion.tokenIds.length),
      returns: returns[r].slice(0, completion.tokenIds.length),
    }));

    // ppo_epochs passes of shuffled mini-batches; one update per gradient_accumulation_steps mini-batches.
    const sums = new Map<string, number>();
    let updates = 0;
    for (let epoch = 0; epoch < s.ppoEpochs; epoch++) {
      const order = shuffled(experience.length, context.rng);
      const perUpdate = s.miniBatchSize * s.gradientAccumulationSteps;
      for (let start = 0; start < order.length; start += perUpdate) {
        const batches: Batch[] = [];
        for (let m = start; m < Math.min(start + perUpdate, order.length); m += s.miniBatchSize) {
          batches.push(this.miniBatch(order.slice(m, Math.min(m + s.miniBatchSize, start + perUpdate)).map((i) => experience[i])));
        }
        const { metrics } = await context.update(batches);
        for (const [name, value] of Object.entries(metrics)) sums.set(name, (sums.get(name) ?? 0) + value);
        updates += 1;
      }
    }

    const sequenceKl = kl.map((row) => row.reduce((a, b) => a + b, 0));
    const meanKl = sequenceKl.reduce((a, b) => a + b, 0) / sequenceKl.length;
    const klCoef = this.kl.value;
    this.kl.update(meanKl, this.promptsPerStep);
    const flatReturns = returns.flatMap((row, r) => row.slice(0, mask[r].length));
    const returnStats = meanStd(flatReturns);
    const lengths = completions.map((c) => c.tokenIds.length);
    const metrics: Record<string, number> = {
      reward: rawScores.mean,
      'objective/kl': meanKl,
      'objective/kl_coef': klCoef,
      // TRL's estimate: the mean over completions of -sum(log p) of their sampled tokens.
      'objective/entropy': completions.reduce((sum, c) => sum - c.logps.reduce((a, b) => a + b, 0), 0) / completions.length,
      'ppo/mean_scores': rawScores.mean,
      'ppo/std_scores': rawScores.std,
      'ppo/mean_non_score_reward': nonScoreRewards.map((row) => row.reduce((a, b) => a + b, 0)).reduce((a, b) => a + b, 0) / nonScoreRewards.length,
      'ppo/returns/mean': returnStats.mean,
      'ppo/returns/var': returnStats.std ** 2,
      'tokens/responses_len_mean': lengths.reduce((a, b) => a + b, 0) / lengths.length,
    };
    for (const [name, sum] of sums) metrics[name] = sum / updates;
    const tokens = completions.reduce((sum, c) => sum + c.promptIds.length + c.tokenIds.length, 0);
    return { loss: metrics['ppo/loss/total'], metrics, tokens };
  }

  /** One mini-batch's rows and rollout feeds. */
  private miniBatch(rows: readonly Experience[]): Batch {
    const laid = RolloutRows.of(rows.map((e) => e.completion), this.settings.padTokenId);
    this.feeds.set(laid.batch, {
      response_mask: laid.maskFeed(),
      old_logps: laid.spread(rows.map((e) => e.completion.logps)),
      advantages: laid.spread(rows.map((e) => e.advantages)),
      old_values: laid.spread(rows.map((e) => e.oldValues)),
      returns: laid.spread(rows.map((e) => e.returns)),
    });
    return laid.batch;
  }

  /** One completion per held-out prompt, sampled with the run's settings from a fixed seed: the reward model's scores. */
  async evaluate(prompts: readonly UnsupervisedExample[], values: ReadonlyMap<string, Float32Array>): Promise<Record<string, number>> {
    const { completions, scores } = await this.rollout(prompts, values, createRng(this.settings.seed));
    const { mean, std } = meanStd(scores);
    return { reward: mean, reward_std: std, 'tokens/responses_len_mean': completions.reduce((a, c) => a + c.tokenIds.length, 0) / completions.length };
  }

  state(): Record<string, unknown> {
    return { kl_controller: this.kl.state(), score_moments: this.moments.state() };
  }

  restore(state: Record<string, unknown>): void {
    const kl = state.kl_controller as KlControllerState | undefined;
    if (kl && this.kl instanceof AdaptiveKlController) this.kl.value = kl.value;
    const moments = state.score_moments as RunningMomentsState | undefined;
    if (moments) this.moments.restore(moments);
  }

  /** The KL coefficient now (for tests and logs). */
  get klCoefficient(): number {
    return this.kl.value;
  }

  async release(): Promise<void> {
    await this.sampler.release();
    await this.reference.release();
    await this.critic.release();
    await this.rewardModel.release();
  }
}
