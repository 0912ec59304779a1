import type { Batch } from '@tunekit/data';
import { TunekitError } from '@tunekit/kernel';
import { dropoutSeed } from '@tunekit/models';
import type { Metrics } from '../outputs/metrics';
import { totalOptimizerSteps, type TrainingArguments } from './args';
import { causalLmObjective, meanMetrics, type TrainingObjective } from './objective';
import { EvalProgram } from './programs';
import { TrainingRun, type RunSetup } from './run';
import { BatchSampler } from './sampler';

/** What training a tokenized example needs: its ids (its length orders group_by_length). */
export interface TrainExample {
  readonly input_ids: Int32Array;
}

export interface TrainerOptions<E extends object> extends RunSetup {
  readonly dataCollator: (examples: readonly E[]) => Batch;
  readonly trainDataset: readonly E[];
  readonly evalDataset?: readonly E[];
  /** An example's length for group_by_length; default: its input_ids' (paired examples pass their longer sequence). */
  readonly exampleLength?: (example: E) => number;
  /** What is trained; default: the causal-LM loss (pt, sft) with the args' label smoothing. */
  readonly objective?: TrainingObjective;
  /** Extra evaluation metrics from the summed per-row results (compute_metrics). */
  readonly computeMetrics?: (result: { correct: number[]; counted: number[] }) => Metrics;
}

export interface TrainOutput {
  readonly globalStep: number;
  readonly trainingLoss: number;
  readonly metrics: Metrics;
}

/** Tokens of a batch that are not padding. */
function realTokens(batch: Batch): number {
  const mask = batch.attention_mask;
  if (!mask) return batch.input_ids.data.length;
  let count = 0;
  for (const v of mask.data) if (v > 0) count++;
  return count;
}

function inputLength(example: object): number {
  const ids = (example as Partial<TrainExample>).input_ids;
  if (!ids) throw new TunekitError('The training examples have no input_ids: give the Trainer an exampleLength.', 1);
  return ids.length;
}

/**
 * The Hugging Face Trainer's training loop on tunekit's graphs: each optimizer step accumulates the gradients of
 * gradient_accumulation_steps micro-batches (scaled so the result is the gradient of the mean loss over every
 * counted token of the step), clips them, and applies the optimizer with the scheduled learning rate. Logging,
 * evaluation and checkpoints follow the Trainer's strategies; a run resumed from a checkpoint continues the same
 * loss curve, since parameters, optimizer state, the schedule and the data order are all restored from the step.
 */
export class Trainer<E extends object> {
  private readonly args: TrainingArguments;
  /** The trained values after `train()` (the run's, while it runs); empty before. */
  private values: ReadonlyMap<string, Float32Array> = new Map();
  private run?: TrainingRun;
  private evalProgram?: EvalProgram;
  private readonly objective: TrainingObjective;

  constructor(private readonly options: TrainerOptions<E>) {
    this.args = options.args;
    this.objective = options.objective ?? causalLmObjective({ labelSmoothing: options.args.labelSmoothingFactor });
  }

  async train(): Promise<TrainOutput> {
    const { args, options } = this;
    const lengths = options.trainDataset.map(options.exampleLength ?? inputLength);
    const sampler = new BatchSampler(lengths, {
      batchSize: args.perDeviceTrainBatchSize,
      seed: args.dataSeed ?? args.seed,
      shuffle: !args.disableShuffling,
      dropLast: args.dataloaderDropLast,
      groupByLength: args.groupByLength,
    });
    const { maxSteps, updatesPerEpoch } = totalOptimizerSteps(args, sampler.batchesPerEpoch);
    const run = await TrainingRun.start({
      ...options,
      objective: this.objective,
      maxSteps,
      stepsPerEpoch: updatesPerEpoch,
      samplesPerStep: args.gradientAccumulationSteps * args.perDeviceTrainBatchSize,
    });
    this.run = run;
    run.onProgramsChanged = async () => {
      await this.evalProgram?.release();
      this.evalProgram = undefined;
    };
    let epochBatches: { epoch: number; batches: number[][] } | undefined;
    try {
      while (run.running) {
        const globalStep = run.globalStep;
        const epoch = Math.floor(globalStep / updatesPerEpoch);
        const inEpoch = globalStep % updatesPerEpoch;
        if (!epochBatches || epochBatches.epoch !== epoch) epochBatches = { epoch, batches: sampler.epoch(epoch) };
        const micro = epochBatches.batches
          .slice(inEpoch * args.gradientAccumulationSteps, (inEpoch + 1) * args.gradientAccumulationSteps)
          .map((indices) => options.dataCollator(indices.map((i) => options.trainDataset[i])));
        const weight = micro.reduce((sum, batch) => sum + this.objective.weight(batch), 0);
        if (weight === 0) throw new TunekitError(`Optimizer step ${globalStep + 1} has no counted label tokens: check the dataset's labels (train_on_prompt, cutoff_len).`);
        // The micro-batches' metrics go to the logging window one by one; the objective summarizes their sums.
        const perBatch: [string, number][] = [];
        const outcome = await run.update(micro, {
          lossScale: 1 / weight,
          updateNumber: globalStep + 1,
          seed: (index) => dropoutSeed(args.seed, globalStep, index),
        });
        for (const [name, sum] of outcome.metricSums) perBatch.push([name, sum]);
        await run.endStep({
          loss: outcome.lossSum / weight,
          metrics: perBatch,
          microBatches: micro.length,
          tokens: micro.reduce((sum, batch) => sum + realTokens(batch), 0),
          gradNorm: outcome.gradNorm,
          evaluate: options.evalDataset ? () => this.evaluate() : undefined,
        });
      }
      const keys = ['loss', ...(options.evalDataset && args.evalStrategy !== 'no' ? ['eval_loss'] : [])];
      const result = await run.finish(keys);
      this.values = run.values;
      return result;
    } finally {
      this.values = run.values;
      this.run = undefined;
      await run.release();
      await this.evalProgram?.release();
      this.evalProgram = undefined;
    }
  }

  /**
   * eval_loss (the objective's loss over the whole evaluation set: for language modelling the mean over every counted
   * token), the objective's metrics averaged over batches, and with compute_accuracy LLaMA-Factory's token accuracy.
   */
  async evaluate(dataset: readonly E[] | undefined = this.options.evalDataset, prefix = 'eval'): Promise<Metrics> {
    return (await this.evaluateRows(dataset, prefix)).metrics;
  }

  /** `evaluate`, and the objective's per-example values in dataset order. */
  private async evaluateRows(dataset: readonly E[] | undefined, prefix: string): Promise<{ metrics: Metrics; rows: Record<string, number[]> }> {
    const { options, args } = this;
    if (!dataset?.length) throw new TunekitError(`${prefix === 'eval' ? 'evaluate()' : 'predict()'} needs a dataset: set val_size or eval_dataset.`);
    this.evalProgram ??= await EvalProgram.create(options.model, this.objective, { session: options.sessionOptions ?? {}, accuracy: args.computeAccuracy });
    let lossSum = 0;
    let weight = 0;
    let batches = 0;
    const metricSums = new Map<string, number>();
    const correct: number[] = [];
    const rowCounted: number[] = [];
    const rows: Record<string, number[]> = {};
    for (let i = 0; i < dataset.length; i += args.perDeviceEvalBatchSize) {
      const batch = options.dataCollator(dataset.slice(i, i + args.perDeviceEvalBatchSize));
      const result = await this.evalProgram.run(batch, this.run?.values ?? this.values);
      lossSum += result.lossSum;
      weight += this.objective.weight(batch);
      batches += 1;
      for (const [name, value] of Object.entries(result.metrics)) metricSums.set(name, (metricSums.get(name) ?? 0) + value);
      if (result.correct && result.rowCounted) {
        correct.push(...result.correct);
        rowCounted.push(...result.rowCounted);
      }
      for (const [name, values] of Object.entries(result.rows)) (rows[name] ??= []).push(...values);
    }
    const metrics: Metrics = { [`${prefix}_loss`]: lossSum / weight };
    if (batches > 0 && metricSums.size) {
      const summarized = (this.objective.summarizeMetrics?.bind(this.objective) ?? meanMetrics)(metricSums, batches);
      for (const [name, value] of Object.entries(summarized)) metrics[`${prefix}_${name}`] = value;
    }
    if (args.computeAccuracy && correct.length) {
      // LLaMA-Factory's ComputeAccuracy: the mean over examples of each example's token accuracy.
      const perRow = correct.map((c, i) => (rowCounted[i] > 0 ? c / rowCounted[i] : NaN)).filter((v) => !Number.isNaN(v));
      metrics[`${prefix}_accuracy`] = perRow.reduce((a, b) => a + b, 0) / perRow.length;
    }
    if (options.computeMetrics && correct.length) {
      for (const [name, value] of Object.entries(options.computeMetrics({ correct, counted: rowCounted }))) metrics[name.startsWith(`${prefix}_`) ? name : `${prefix}_${name}`] = value;
    }
    return { metrics, rows };
  }

  /**
   * The Hugging Face Trainer's predict() for a test set: its metrics under `metricKeyPrefix` (test_loss, and
   * test_accuracy with compute_accuracy) and the objective's per-example values (a reward model's chosen and
   * rejected scores) as `predictions`. Generated text comes from do_predict with predict_with_generate (the recipe's
   * generation engine), not from here; logits are not returned.
   */
  async predict(testDataset: readonly E[], metricKeyPrefix = 'test'): Promise<{ metrics: Metrics; predictions: Record<string, number[]> }> {
    const { metrics, rows } = await this.evaluateRows(testDataset, metricKeyPrefix);
    return { metrics, predictions: rows };
  }
}
