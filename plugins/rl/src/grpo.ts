import type { Batch, UnsupervisedExample } from '@tunekit/data';
import type { HostTensor } from '@tunekit/graph';
import { TunekitError, type RewardFunction, type RewardInput, type TokenizerLike } from '@tunekit/kernel';
import { createRng } from '@tunekit/models';
import { modelFeeds, type Feeds, type TrainingObjective } from '@tunekit/trainer';
import { groupAdvantages, meanStd } from './advantages';
import { RolloutRows } from './batches';
import { grpoLoss, type GrpoLossType } from './losses';
import type { RlAlgorithm, RlStepContext, RlStepResult } from './loop';
import type { Completion, PolicySampler, RolloutSettings } from './rollout';
import { policyForward, type RowScorer } from './scorer';

/** Feeds an objective reads beside a batch's token tensors (rollout quantities), keyed by the batch object. */
export class RolloutFeeds {
  private readonly feeds = new WeakMap<Batch, Feeds>();

  set(batch: Batch, feeds: Feeds): void {
    this.feeds.set(batch, feeds);
  }

  /** The model feeds of `batch` plus its rollout feeds. */
  of(batch: Batch): Feeds {
    const extra = this.feeds.get(batch);
    if (!extra) throw new Error('A batch without its rollout feeds reached the RL objective.');
    return { ...modelFeeds(batch), ...extra };
  }
}

/** A reward function as a run selected it. */
export interface SelectedReward {
  readonly id: string;
  readonly fn: RewardFunction;
  readonly weight: number;
}

/** The texts a reward function reads, from sampled completions and their prompts' examples. */
export function rewardInput(completions: readonly Completion[], examples: readonly UnsupervisedExample[], tokenizer: TokenizerLike, eosTokenIds: readonly number[]): RewardInput {
  const eos = new Set(eosTokenIds);
  const decode = (ids: readonly number[]) => tokenizer.decode(ids, { skipSpecialTokens: true });
  return {
    completions: completions.map((c) => decode(c.tokenIds.length && eos.has(c.tokenIds.at(-1)!) ? c.tokenIds.slice(0, -1) : c.tokenIds)),
    prompts: completions.map((c) => decode(c.promptIds)),
    solutions: examples.map((example) => {
      const ids = Array.from(example.labels).filter((id) => id >= 0 && !eos.has(id));
      return ids.length ? decode(ids) : undefined;
    }),
    completionIds: completions.map((c) => c.tokenIds),
  };
}

/**
 * Every reward function's scores and their weighted sum (TRL: NaN scores count 0 in the sum, nansum), plus the
 * per-function means and stds over the scored completions for the logs (`rewards/<id>/mean`, `.../std`).
 */
export async function scoreRewards(rewards: readonly SelectedReward[], input: RewardInput): Promise<{ total: number[]; metrics: Record<string, number> }> {
  const total = new Array<number>(input.completions.length).fill(0);
  const metrics: Record<string, number> = {};
  for (const reward of rewards) {
    const scores = await reward.fn.score(input);
    if (scores.length !== total.length) throw new TunekitError(`The reward function '${reward.id}' returned ${scores.length} scores for ${total.length} completions; it must return one per completion.`, 1);
    scores.forEach((s, i) => (total[i] += Number.isNaN(s) ? 0 : reward.weight * s));
    const scored = scores.filter((s) => !Number.isNaN(s));
    if (scored.length) {
      const { mean, std } = meanStd(scored);
      metrics[`rewards/${reward.id}/mean`] = mean;
      metrics[`rewards/${reward.id}/std`] = std;
    }
  }
  return { total, metrics };
}

/** One micro-batch of scored rollouts, kept for num_iterations steps (plain data: it is checkpointed as JSON). */
interface BufferedMicroBatch {
  readonly completions: readonly Completion[];
  readonly advantages: readonly number[];
  /** Per completion token, when beta != 0. */
  readonly refLogps?: readonly (readonly number[])[];
}

interface RolloutBuffer {
  readonly micro: readonly BufferedMicroBatch[];
  /** The rollout metrics (rewards, lengths), logged on the step that sampled them. */
  readonly metrics: Record<string, number>;
  readonly tokens: number;
}

export interface GrpoSettings {
  readonly numGenerations: number;
  /** Steps that reuse each batch of rollouts (ms-swift's num_iterations). */
  readonly numIterations: number;
  readonly epsilon: number;
  readonly epsilonHigh?: number;
  readonly beta: number;
  readonly lossType: GrpoLossType;
  /** Micro-batches (of per_device_train_batch_size completions) per optimizer step. */
  readonly gradientAccumulationSteps: number;
  /** Completions per micro-batch (per_device_train_batch_size, a multiple of numGenerations). */
  readonly completionsPerMicroBatch: number;
  readonly rollout: RolloutSettings;
  readonly padTokenId: number;
  readonly seed: number;
}

/**
 * GRPO's training graph over one micro-batch of completions: the policy's per-token log-probs (logits / the sampling
 * temperature, as TRL), and the clipped objective with the k3 KL term against the fed reference log-probs.
 */
export function grpoObjective(settings: Pick<GrpoSettings, 'epsilon' | 'epsilonHigh' | 'beta' | 'lossType' | 'rollout'>, feeds: RolloutFeeds): TrainingObjective {
  return {
    build(g, model, context = {}) {
      const { mask, oldLogps, logps } = policyForward(g, model, context, settings.rollout.logitScale);
      const advantages = g.input('advantages', 'float32', ['batch']);
      const refLogps = settings.beta !== 0 ? g.input('ref_logps', 'float32', ['batch', 'seq']) : undefined;
      const loss = grpoLoss({ logps, oldLogps, refLogps, advantages, mask, epsilon: settings.epsilon, epsilonHigh: settings.epsilonHigh, beta: settings.beta, lossType: settings.lossType, maxCompletionLength: settings.rollout.maxNewTokens });
      return { lossSum: loss.loss, metrics: { clip_ratio: loss.clipRatio, ...(loss.kl ? { kl: loss.kl } : {}) } };
    },
    feeds: (batch) => feeds.of(batch),
    weight: () => 1,
  };
}

/**
 * GRPO (TRL's GRPOTrainer, ms-swift's grpo): each micro-batch samples num_generations completions of each of its
 * prompts from the current policy, scores them with the reward functions, normalises the rewards within each group,
 * takes the reference's log-probs (beta != 0), and the step makes one optimizer update over its micro-batches.
 */
export class GrpoAlgorithm implements RlAlgorithm {
  readonly objective: TrainingObjective;
  readonly progressMetrics = ['reward', 'kl'];
  readonly plotted = ['reward'];
  private readonly feeds = new RolloutFeeds();
  private buffer: RolloutBuffer | undefined;

  constructor(
    private readonly settings: GrpoSettings,
    private readonly sampler: PolicySampler,
    private readonly reference: RowScorer | undefined,
    private readonly rewards: readonly SelectedReward[],
    private readonly tokenizer: TokenizerLike,
  ) {
    this.objective = grpoObjective(settings, this.feeds);
  }

  get promptsPerStep(): number {
    const s = this.settings;
    return (s.completionsPerMicroBatch / s.numGenerations) * s.gradientAccumulationSteps;
  }

  get iterationsPerBatch(): number {
    return this.settings.numIterations;
  }

  /** Samples num_generations completions of each prompt (groups consecutive) and scores them. */
  private async rollout(prompts: readonly UnsupervisedExample[], values: ReadonlyMap<string, Float32Array>, rng: RlStepContext['rng'], generations: number) {
    const examples = prompts.flatMap((p) => Array.from({ length: generations }, () => p));
    const completions = await this.sampler.sample(examples.map((e) => Array.from(e.input_ids)), values, this.settings.rollout, rng);
    const scored = await scoreRewards(this.rewards, rewardInput(completions, examples, this.tokenizer, this.settings.rollout.eosTokenIds));
    return { examples, completions, ...scored };
  }

  async step(prompts: readonly UnsupervisedExample[], context: RlStepContext): Promise<RlStepResult> {
    // num_iterations: the first step of a batch samples; the next ones reuse its rollouts (their old log-probs are
    // the policy's at sampling time, so the ratio moves away from 1 as the policy trains).
    const fresh = context.iteration === 0 || !this.buffer;
    if (fresh) this.buffer = await this.generate(prompts, context);
    const buffer = this.buffer!;
    const { loss, metrics } = await context.update(buffer.micro.map((micro) => this.batchOf(micro)));
    return { loss, metrics: { ...(fresh ? buffer.metrics : {}), ...metrics }, tokens: fresh ? buffer.tokens : 0 };
  }

  /** Samples and scores the micro-batches of one batch of prompts. */
  private async generate(prompts: readonly UnsupervisedExample[], context: RlStepContext): Promise<RolloutBuffer> {
    const s = this.settings;
    const perMicro = s.completionsPerMicroBatch / s.numGenerations;
    const micro: BufferedMicroBatch[] = [];
    const totals: number[] = [];
    const groupStds: number[] = [];
    const lengths: number[] = [];
    const metricSums = new Map<string, number>();
    let tokens = 0;
    for (let start = 0; start < prompts.length; start += perMicro) {
      const { completions, total, metrics } = await this.rollout(prompts.slice(start, start + perMicro), context.values(), context.rng, s.numGenerations);
      const { advantages, groupStd } = groupAdvantages(total, s.numGenerations);
      let refLogps: number[][] | undefined;
      if (s.beta !== 0) {
        if (!this.reference) throw new TunekitError('GRPO with beta != 0 needs a reference model.', 1);
        const rows = RolloutRows.of(completions, s.padTokenId);
        refLogps = rows.gather((await this.reference.run(rows)).logps!);
      }
      micro.push({ completions, advantages, refLogps });
      totals.push(...total);
      groupStds.push(...groupStd);
      lengths.push(...completions.map((c) => c.tokenIds.length));
      for (const [name, value] of Object.entries(metrics)) metricSums.set(name, (metricSums.get(name) ?? 0) + value);
      tokens += completions.reduce((sum, c) => sum + c.promptIds.length + c.tokenIds.length, 0);
    }
    const metrics: Record<string, number> = {
      reward: meanStd(totals).mean,
      reward_std: groupStds.reduce((a, b) => a + b, 0) / groupStds.length,
      frac_reward_zero_std: groupStds.filter((std) => std === 0).length / groupStds.length,
      'completions/mean_length': lengths.reduce((a, b) => a + b, 0) / lengths.length,
      'completions/clipped_ratio': lengths.filter((n) => n >= s.rollout.maxNewTokens).length / lengths.length,
    };
    for (const [name, sum] of metricSums) metrics[name] = sum / micro.length;
    return { micro, metrics, tokens };
  }

  /** A buffered micro-batch as rows and their rollout feeds. */
  private batchOf(micro: BufferedMicroBatch): Batch {
    const rows = RolloutRows.of(micro.completions, this.settings.padTokenId);
    const feeds: Record<string, HostTensor> = {
      response_mask: rows.maskFeed(),
      old_logps: rows.spread(micro.completions.map((c) => c.logps)),
      advantages: { dtype: 'float32', dims: [rows.rows], data: Float32Array.from(micro.advantages) },
    };
    if (micro.refLogps) feeds.ref_logps = rows.spread(micro.refLogps);
    this.feeds.set(rows.batch, feeds);
    return rows.batch;
  }

  /**
   * One completion per held-out prompt (in batches of per_device_train_batch_size), sampled with the run's settings
   * from the run's seed, so evaluations before and after training draw alike: the mean rewards.
   */
  async evaluate(prompts: readonly UnsupervisedExample[], values: ReadonlyMap<string, Float32Array>): Promise<Record<string, number>> {
    const rng = createRng(this.settings.seed);
    const chunk = this.settings.completionsPerMicroBatch;
    const completions: Completion[] = [];
    const examples: UnsupervisedExample[] = [];
    for (let start = 0; start < prompts.length; start += chunk) {
      const part = prompts.slice(start, start + chunk);
      completions.push(...(await this.sampler.sample(part.map((e) => Array.from(e.input_ids)), values, this.settings.rollout, rng)));
      examples.push(...part);
    }
    const { total, metrics } = await scoreRewards(this.rewards, rewardInput(completions, examples, this.tokenizer, this.settings.rollout.eosTokenIds));
    return { reward: meanStd(total).mean, ...metrics, 'completions/mean_length': completions.reduce((sum, c) => sum + c.tokenIds.length, 0) / completions.length };
  }

  /** With num_iterations > 1, the rollouts being reused, so a run resumed between two of their steps reuses them too. */
  state(): Record<string, unknown> {
    return this.settings.numIterations > 1 && this.buffer ? { buffer: this.buffer } : {};
  }

  restore(state: Record<string, unknown>): void {
    this.buffer = (state.buffer as RolloutBuffer | undefined) ?? undefined;
  }

  async release(): Promise<void> {
    await this.sampler.release();
    await this.reference?.release();
  }
}
