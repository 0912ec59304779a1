import type { Batch, IntTensor } from '@tunekit/data';
import type { Graph, Tensor } from '@tunekit/graph';
import { TunekitError, type LossRequirements } from '@tunekit/kernel';
import { causalLMInputs, sequenceLogps, tokenLogps, type CausalLM, type CausalLMInputs } from '@tunekit/models';
import { meanMetrics, modelFeeds, type Feeds, type TrainingObjective } from '@tunekit/trainer';
import type { PreferenceLoss } from '../contributions';
import { splitPairs } from '../losses';
import { lastTokenMask } from './batches';
import type { ReferenceModel } from './reference';
import { gatherMarked, ValueHead } from './value-head';

/** What the preference objectives show on the progress line, when their loss logs it. */
const PROGRESS_METRICS = ['rewards/margins', 'rewards/accuracies', 'kl', 'accuracy'];

/** The loss a stage trains: the contribution, and its id for messages. */
export interface SelectedLoss {
  readonly id: string;
  readonly loss: PreferenceLoss;
}

type Providers = Record<string, () => Tensor>;

/**
 * The tensors a loss reads: each name its requirements list, built from `providers` (lazily, so nothing the loss
 * does not read is computed), plus the optional ones a provider exists for. A name without a provider is an error
 * naming the loss and the input.
 */
export function lossInputs(selected: SelectedLoss, stage: string, providers: Providers): Record<string, Tensor> {
  const { requirements } = selected.loss;
  const missing = requirements.inputs.filter((name) => !providers[name]);
  if (missing.length) {
    throw new TunekitError(`The ${selected.id} loss needs ${missing.join(', ')}, which stage ${stage} cannot provide (it provides ${Object.keys(providers).join(', ')}).`);
  }
  const names = [...requirements.inputs, ...(requirements.optionalInputs ?? []).filter((name) => providers[name])];
  return Object.fromEntries(names.map((name) => [name, providers[name]()]));
}

/** A thunk that builds once. */
function once<T>(build: () => T): () => T {
  let value: T | undefined;
  return () => (value ??= build());
}

/** [rows] per-row label log-probs reduced as the loss asks (`sum` or `mean` over counted tokens). */
function reduceLogps(requirements: LossRequirements, selected: SelectedLoss, logps: { sum: Tensor; mean: Tensor }): Tensor {
  if (requirements.sequenceLogps === 'none') throw new TunekitError(`The ${selected.id} loss reads log-probs but declares sequenceLogps: 'none'.`, 1);
  return requirements.sequenceLogps === 'mean' ? logps.mean : logps.sum;
}

interface ReferenceSums {
  /** [rows] reduced like the policy's. */
  readonly logps: Tensor;
}

/** The reference's per-row log-probs, reduced like the policy's (a mean divides by the same counted tokens). */
function referenceLogps(g: Graph, reference: ReferenceModel, inputs: CausalLMInputs, labels: Tensor, requirements: LossRequirements, lengths: () => Tensor): ReferenceSums {
  const sums = reference.sequenceLogps(g, inputs, labels);
  return { logps: requirements.sequenceLogps === 'mean' ? g.Div(sums, lengths()) : sums };
}

/**
 * The TRL way of logging a window of micro-batches: a metric logged as `<name>/<split>_sum` with a `count/<split>`
 * (KTO's) becomes `<name>/<split>` = total sum / total count, `rewards/margins` their difference; every other metric
 * is the mean over micro-batches.
 */
export function preferenceWindowMetrics(sums: ReadonlyMap<string, number>, microBatches: number): Record<string, number> {
  const logged = meanMetrics(sums, microBatches);
  let ratios = false;
  for (const [key, total] of sums) {
    const match = /^(.+)\/(\w+)_sum$/.exec(key);
    const count = match && sums.get(`count/${match[2]}`);
    if (!match || count === undefined || count === null) continue;
    delete logged[key];
    ratios = true;
    if (count > 0) logged[`${match[1]}/${match[2]}`] = total / count;
    else delete logged[`${match[1]}/${match[2]}`];
  }
  if (ratios) {
    for (const key of Object.keys(logged)) if (key.startsWith('count/')) delete logged[key];
    if ('rewards/chosen' in logged && 'rewards/rejected' in logged) logged['rewards/margins'] = logged['rewards/chosen'] - logged['rewards/rejected'];
    else delete logged['rewards/margins'];
  }
  return logged;
}

/** The reference a loss reads: the given one if the loss needs one (an error if none was set up), else none. */
function referenceFor(selected: SelectedLoss, reference: ReferenceModel | undefined): ReferenceModel | undefined {
  if (!selected.loss.requirements.needsReference) return undefined;
  if (!reference) throw new TunekitError(`The ${selected.id} loss needs a reference model, and none was set up.`, 1);
  return reference;
}

const common = {
  // Each micro-batch's loss is a mean over its pairs; the step's loss is the mean over micro-batches (TRL).
  weight: () => 1,
  summarizeMetrics: preferenceWindowMetrics,
  progressMetrics: PROGRESS_METRICS,
};

/**
 * dpo: the policy's label log-probs of 2n rows (chosen then rejected), one forward; the reference's over the same
 * rows when the loss needs one; the loss built from exactly the inputs it declares.
 */
export function pairedPreferenceObjective(selected: SelectedLoss, given: ReferenceModel | undefined): TrainingObjective {
  const { requirements } = selected.loss;
  const reference = referenceFor(selected, given);
  return {
    ...common,
    build(g, model, context = {}) {
      const inputs = causalLMInputs(g);
      const labels = g.input('labels', 'int64', ['batch', 'seq']);
      // Training mode (dropout masks, NEFTune noise) for the policy; the reference is built without it.
      const { logits } = model.forward(g, inputs, { dropoutSeed: context.dropoutSeed, embeddingNoise: context.embeddingNoise });
      const policy = once(() => sequenceLogps(logits, labels));
      const tokens = once(() => tokenLogps(logits, labels));
      const policyRows = once(() => splitPairs(reduceLogps(requirements, selected, policy())));
      const lengths = once(() => splitPairs(policy().lengths));
      const logitsMeans = once(() => splitPairs(g.ReduceMean(logits, [1, 2], false)));
      const providers: Providers = {
        policy_chosen_logps: () => policyRows()[0],
        policy_rejected_logps: () => policyRows()[1],
        chosen_lengths: () => lengths()[0],
        rejected_lengths: () => lengths()[1],
        policy_token_logps: () => tokens().logps,
        token_mask: () => tokens().counted,
        policy_chosen_logits_mean: () => g.ReduceMean(logitsMeans()[0], undefined, false),
        policy_rejected_logits_mean: () => g.ReduceMean(logitsMeans()[1], undefined, false),
      };
      if (reference) {
        const referenceRows = once(() => splitPairs(referenceLogps(g, reference, inputs, labels, requirements, () => policy().lengths).logps));
        providers.reference_chosen_logps = () => referenceRows()[0];
        providers.reference_rejected_logps = () => referenceRows()[1];
      }
      const { loss, metrics } = selected.loss.build(g, lossInputs(selected, 'dpo', providers));
      return { lossSum: loss, metrics };
    },
    async feeds(batch) {
      return { ...modelFeeds(batch), ...(await reference?.feeds(batch)) };
    },
  };
}

/** The kto_tags of a batch as float 1 / 0. */
function tagFeed(batch: Batch): Feeds {
  const tags = batch.kto_tags;
  if (!tags) throw new TunekitError('A kto batch has no kto_tags.', 1);
  return { kto_tags: { dtype: 'float32', dims: [...tags.dims], data: Float32Array.from(tags.data) } };
}

/**
 * kto: n tagged examples and their n KL rows in one forward of 2n rows; the reference's log-probs of the same rows;
 * the kto loss from the inputs it declares (the KL estimate needs no gradient: the loss detaches it).
 */
export function ktoObjective(selected: SelectedLoss, given: ReferenceModel | undefined): TrainingObjective {
  const { requirements } = selected.loss;
  const reference = referenceFor(selected, given);
  return {
    ...common,
    build(g, model, context = {}) {
      const inputs = causalLMInputs(g);
      const labels = g.input('labels', 'int64', ['batch', 'seq']);
      // Training mode (dropout masks, NEFTune noise) for the policy; the reference is built without it.
      const { logits } = model.forward(g, inputs, { dropoutSeed: context.dropoutSeed, embeddingNoise: context.embeddingNoise });
      const policy = once(() => sequenceLogps(logits, labels));
      // Rows 0..n-1 are the examples, rows n..2n-1 their KL rows: the same split as chosen / rejected.
      const policyRows = once(() => splitPairs(reduceLogps(requirements, selected, policy())));
      const providers: Providers = {
        policy_logps: () => policyRows()[0],
        policy_kl_logps: () => policyRows()[1],
        lengths: () => splitPairs(policy().lengths)[0],
        kto_tags: () => g.input('kto_tags', 'float32', ['examples']),
      };
      if (reference) {
        const referenceRows = once(() => splitPairs(referenceLogps(g, reference, inputs, labels, requirements, () => policy().lengths).logps));
        providers.reference_logps = () => referenceRows()[0];
        providers.reference_kl_logps = () => referenceRows()[1];
      }
      const { loss, metrics } = selected.loss.build(g, lossInputs(selected, 'kto', providers));
      return { lossSum: loss, metrics };
    },
    async feeds(batch) {
      return { ...modelFeeds(batch), ...tagFeed(batch), ...(await reference?.feeds(batch)) };
    },
  };
}

/**
 * rm: 2n rows (chosen then rejected) through the model; the value head scores the final hidden state of each row's
 * last non-pad token; the pairwise loss compares the scores of each pair. The head's tensors are the objective's
 * own trainable parameters, saved as value_head.safetensors.
 */
export function rewardModelObjective(selected: SelectedLoss, head: ValueHead): TrainingObjective {
  return {
    ...common,
    build(g, model: CausalLM, context = {}) {
      const inputs = causalLMInputs(g);
      const lastToken = g.input('last_token_mask', 'float32', ['batch', 'seq']);
      const { hiddenStates } = model.forward(g, inputs, { dropoutSeed: context.dropoutSeed, embeddingNoise: context.embeddingNoise });
      const { weight, bias } = head.parameters(g);
      const scores = once(() => splitPairs(ValueHead.scores(gatherMarked(hiddenStates, lastToken), weight.tensor, bias.tensor)));
      const providers: Providers = {
        chosen_scores: () => scores()[0],
        rejected_scores: () => scores()[1],
      };
      const { loss, metrics } = selected.loss.build(g, lossInputs(selected, 'rm', providers));
      return { lossSum: loss, metrics, parameters: [weight, bias], rows: { chosen: scores()[0], rejected: scores()[1] } };
    },
    feeds(batch) {
      const { labels: _labels, ...feeds } = modelFeeds(batch);
      return { ...feeds, last_token_mask: lastTokenMask(batch.attention_mask as IntTensor) };
    },
    save: (dir, values) => head.save(dir, values),
  };
}
