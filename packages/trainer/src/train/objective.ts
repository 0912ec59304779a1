import type { Batch } from '@tunekit/data';
import { crossEntropy, Graph, type HostTensor, type Tensor } from '@tunekit/graph';
import { causalLMInputs, shiftLabels, tokenLogps, type CausalLM, type TrainableParameter } from '@tunekit/models';
import { countedTokens, modelFeeds } from './feeds';

/** What an objective appends to a graph: the loss to differentiate and the metrics to log (scalars). */
export interface ObjectiveGraph {
  /**
   * The micro-batch's loss as a sum over its `weight` units (tokens for language modelling, one unit per micro-batch
   * for preference losses): the loop scales it by 1 / (the step's total weight), so the accumulated gradient is the
   * gradient of the step's mean loss.
   */
  readonly lossSum: Tensor;
  /** Scalar metrics of the micro-batch (means over its rows); the loop averages them over micro-batches. */
  readonly metrics: Readonly<Record<string, Tensor>>;
  /** Language-modelling objectives expose their logits and labels, for token accuracy in evaluation. */
  readonly tokens?: { readonly logits: Tensor; readonly labels: Tensor };
  /**
   * Trainable tensors of the objective itself, beside the model's (a reward model's value head): graph inputs the
   * loop feeds, differentiates, updates, checkpoints and resumes like the model's; the objective saves them (`save`).
   */
  readonly parameters?: readonly TrainableParameter[];
  /** Per-example values that prediction returns ([examples] each: a reward model's chosen and rejected scores). */
  readonly rows?: Readonly<Record<string, Tensor>>;
}

/** The host values a graph is fed with, by input name. */
export type Feeds = Record<string, HostTensor>;

/** What the program gives an objective's graph: in training, the int64 scalar that dropout masks derive from. */
export interface ObjectiveContext {
  readonly dropoutSeed?: Tensor;
  /** NEFTune's noise for the input embeddings, [batch, seq, hidden], when neftune_noise_alpha is set. */
  readonly embeddingNoise?: Tensor;
}

/**
 * What a stage trains: how a batch becomes feeds, how much it weighs in the step's mean, and the graph of its loss.
 * The causal-LM objective serves pt and sft; preference stages (rm, dpo, kto) bring their own.
 */
export interface TrainingObjective {
  build(g: Graph, model: CausalLM, context?: ObjectiveContext): ObjectiveGraph;
  /** The graph's inputs for a batch; may be computed (e.g. by a reference model in its own session). */
  feeds(batch: Batch): Feeds | Promise<Feeds>;
  weight(batch: Batch): number;
  /**
   * The logged values of a logging window (or an evaluation) from the sums of each metric over its micro-batches;
   * default: the mean per micro-batch. Objectives whose metrics are ratios of counts (KTO) combine their sums here.
   */
  summarizeMetrics?(sums: ReadonlyMap<string, number>, microBatches: number): Record<string, number>;
  /** Metrics shown on the progress line beside the loss, when logged. */
  readonly progressMetrics?: readonly string[];
  /** Writes the objective's own trained tensors (`ObjectiveGraph.parameters`) beside the model or adapter. */
  save?(dir: string, values: ReadonlyMap<string, Float32Array>): void;
}

/** The default of `summarizeMetrics`: each metric's mean over the micro-batches. */
export function meanMetrics(sums: ReadonlyMap<string, number>, microBatches: number): Record<string, number> {
  return Object.fromEntries([...sums].map(([name, sum]) => [name, sum / microBatches]));
}

/** Next-token cross-entropy summed over counted tokens (optionally label-smoothed), weighted by counted tokens. */
export function causalLmObjective(options: { labelSmoothing: number }): TrainingObjective {
  return {
    build(g, model, context = {}) {
      const inputs = causalLMInputs(g);
      const labels = g.input('labels', 'int64', ['batch', 'seq']);
      const { logits } = model.forward(g, inputs, { dropoutSeed: context.dropoutSeed, embeddingNoise: context.embeddingNoise });
      const lossSum = options.labelSmoothing > 0
        ? crossEntropy(logits, shiftLabels(labels), { labelSmoothing: options.labelSmoothing, reduction: 'sum' })
        : g.Neg(g.ReduceSum(tokenLogps(logits, labels).logps, undefined, false));
      return { lossSum, metrics: {}, tokens: { logits, labels } };
    },
    feeds: modelFeeds,
    weight: countedTokens,
  };
}
