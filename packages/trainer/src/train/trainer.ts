import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Batch } from '@tunekit/data';
import type { GraphOptimizer, SessionOptions } from '@tunekit/graph';
import { TunekitError, type LrSchedulerFactory, type ParameterBlock, type TrainingCallback, type TrainingState, type Tuner } from '@tunekit/kernel';
import { dropoutSeed, isNoDecayParameter, type CausalLM } from '@tunekit/models';
import { beginCheckpoint, rotateCheckpoints } from '../outputs/checkpoints';
import { saveMetrics, speedMetrics, type Metrics } from '../outputs/metrics';
import { prepareOutputDir } from '../outputs/output-dir';
import { plotLoss } from '../outputs/plot';
import { ProgressReporter, type ProgressStream } from '../outputs/progress';
import { readTrainerState, RunLog, TRAINER_STATE_NAME } from '../outputs/run-log';
import { stepsOf, totalOptimizerSteps, type TrainingArguments } from './args';
import { causalLmObjective, meanMetrics, type TrainingObjective } from './objective';
import { EvalProgram, GradProgram, UpdateProgram, type ParameterGroupSpec } from './programs';
import { BatchSampler } from './sampler';
import { BlockTraining } from './blocks';
import { OPTIMIZER_STATE_FILE, readCheckpointWeights, readTensorsFrom, saveOptimizerState, saveTrainedModel } from './weights-io';

/** What training a tokenized example needs: its ids (its length orders group_by_length). */
export interface TrainExample {
  readonly input_ids: Int32Array;
}

export interface TrainerOptions<E extends object> {
  /** The model with its tuner applied (LoRA wrappers added, trainable parameters chosen). */
  readonly model: CausalLM;
  /** The model folder it came from (config and tokenizer files are copied from it). */
  readonly modelDir: string;
  /** The HF Trainer's `tokenizer`: saved with the model (it may have new special tokens). */
  readonly tokenizer?: { save(dir: string): void };
  readonly tuner: Tuner;
  readonly args: TrainingArguments;
  readonly dataCollator: (examples: readonly E[]) => Batch;
  readonly trainDataset: readonly E[];
  readonly evalDataset?: readonly E[];
  /** An example's length for group_by_length; default: its input_ids' (paired examples pass their longer sequence). */
  readonly exampleLength?: (example: E) => number;
  /** The `optimizers` override of the HF Trainer: the optimizer and the learning-rate schedule. */
  readonly optimizers: { readonly optimizer: GraphOptimizer; readonly scheduler: LrSchedulerFactory; readonly schedulerKwargs?: Record<string, unknown> };
  /** What is trained; default: the causal-LM loss (pt, sft) with the args' label smoothing. */
  readonly objective?: TrainingObjective;
  readonly callbacks?: readonly TrainingCallback[];
  /** Extra evaluation metrics from the summed per-row results (compute_metrics). */
  readonly computeMetrics?: (result: { correct: number[]; counted: number[] }) => Metrics;
  /** onnxruntime settings of the selected backend. */
  readonly sessionOptions?: SessionOptions;
  readonly log?: (line: string) => void;
  readonly progressStream?: ProgressStream;
  /** Stops after this many optimizer steps of this session (tests simulate a crash with it). */
  readonly stopAfterSteps?: number;
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

function addInto(target: Float32Array, source: Float32Array): void {
  for (let i = 0; i < target.length; i++) target[i] += source[i];
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
  private readonly log: (line: string) => void;
  private values = new Map<string, Float32Array>();
  private optimizerState = new Map<string, Float32Array>();
  private shapes = new Map<string, readonly number[]>();
  private stateShapes: ReadonlyMap<string, readonly number[]> = new Map();
  private evalProgram?: EvalProgram;
  private readonly objective: TrainingObjective;

  constructor(private readonly options: TrainerOptions<E>) {
    this.args = options.args;
    this.log = options.log ?? (() => {});
    this.objective = options.objective ?? causalLmObjective({ labelSmoothing: options.args.labelSmoothingFactor });
  }

  /** Parameter groups as the Trainer builds them: decay / no decay, times LoRA+ learning-rate scales. */
  private parameterGroups(names: readonly string[]): ParameterGroupSpec[] {
    const groups = new Map<string, { names: string[]; weightDecay: number; lrScale: number }>();
    for (const name of names) {
      const weightDecay = isNoDecayParameter(name) ? 0 : this.args.weightDecay;
      const lrScale = this.options.tuner.lrScale?.(name) ?? 1;
      const key = `${weightDecay}|${lrScale}`;
      const group = groups.get(key) ?? { names: [], weightDecay, lrScale };
      group.names.push(name);
      groups.set(key, group);
    }
    return [...groups.values()];
  }

  async train(): Promise<TrainOutput> {
    const { args, options } = this;
    const prepared = prepareOutputDir(args.outputDir, { overwrite: args.overwriteOutputDir, resume: args.resumeFromCheckpoint });
    const lengths = options.trainDataset.map(options.exampleLength ?? inputLength);
    const sampler = new BatchSampler(lengths, {
      batchSize: args.perDeviceTrainBatchSize,
      seed: args.dataSeed ?? args.seed,
      shuffle: !args.disableShuffling,
      dropLast: args.dataloaderDropLast,
      groupByLength: args.groupByLength,
    });
    const { maxSteps, updatesPerEpoch } = totalOptimizerSteps(args, sampler.batchesPerEpoch);
    const warmupSteps = args.warmupSteps > 0 ? args.warmupSteps : Math.ceil(args.warmupRatio * maxSteps);
    const schedule = options.optimizers.scheduler.create({ totalSteps: maxSteps, warmupSteps, baseLr: args.learningRate, kwargs: options.optimizers.schedulerKwargs ?? {} });
    const lrAt = (step: number) => args.learningRate * schedule.multiplier(step);

    const optimizer = options.optimizers.optimizer;
    const blocks = optimizer.activeBlock ? new BlockTraining(options.model, options.tuner, optimizer) : undefined;
    let blockAtResume: ParameterBlock | undefined;
    if (blocks && prepared.resumeFrom) {
      // Blocks trained before the checkpoint live in its model weights, not in any program's trainable values.
      blocks.loadBase(prepared.resumeFrom);
    }
    const initialStep = prepared.resumeFrom ? readTrainerState(path.join(prepared.resumeFrom, TRAINER_STATE_NAME)).global_step : 0;
    if (blocks) blockAtResume = blocks.activate(initialStep + 1, this.log);
    let { gradProgram, updateProgram } = await this.buildPrograms();
    let names = gradProgram.parameters.map((p) => p.name);
    const size = (p: { shape: readonly number[] }) => p.shape.reduce((a, b) => a * b, 1);
    const trainable = (blocks?.trainableSize ?? 0) || gradProgram.parameters.reduce((sum, p) => sum + size(p), 0);
    const objectiveOwn = gradProgram.parameters.filter((p) => gradProgram.objectiveParameters.includes(p.name)).reduce((sum, p) => sum + size(p), 0);
    const total = options.model.parameters().reduce((sum, p) => sum + size(p), 0) + (options.tuner.addsAdapters ? trainable - objectiveOwn : 0) + objectiveOwn;
    this.log(`trainable params: ${trainable.toLocaleString('en-US')} || all params: ${total.toLocaleString('en-US')} || trainable%: ${((100 * trainable) / total).toFixed(4)}`);
    this.logStateSize();

    const logOptions = {
      outputDir: args.outputDir,
      maxSteps,
      numTrainEpochs: Math.ceil(maxSteps / updatesPerEpoch),
      loggingSteps: args.loggingSteps,
      evalSteps: args.evalSteps ?? args.loggingSteps,
      saveSteps: args.saveSteps,
      trainBatchSize: args.perDeviceTrainBatchSize,
      includeNumInputTokensSeen: args.includeNumInputTokensSeen,
    };
    let globalStep = 0;
    let runLog: RunLog;
    if (prepared.resumeFrom) {
      runLog = RunLog.resume(prepared.resumeFrom, logOptions);
      globalStep = runLog.state.global_step;
      this.values = readCheckpointWeights(prepared.resumeFrom, names);
      // A block that becomes active right at the resumed step starts with fresh state, as it would have.
      this.optimizerState = blockAtResume?.since === globalStep + 1 ? updateProgram.initialState() : this.readOptimizerState(prepared.resumeFrom, updateProgram);
      this.log(`Resuming from ${prepared.resumeFrom} at step ${globalStep}.`);
    } else {
      runLog = new RunLog(logOptions);
      this.values = new Map(names.map((name) => [name, gradProgram.initial(name)]));
      this.optimizerState = updateProgram.initialState();
    }
    runLog.beginTraining();

    const progress = new ProgressReporter({ stream: options.progressStream ?? process.stdout, totalSteps: maxSteps });
    progress.start(globalStep);
    const callbacks = options.callbacks ?? [];
    const state = (): TrainingState => ({ globalStep, maxSteps, epoch: runLog.state.epoch });
    for (const callback of callbacks) await callback.onTrainBegin?.(state());

    const loggingSteps = stepsOf(args.loggingSteps, maxSteps);
    const saveSteps = stepsOf(args.saveSteps, maxSteps);
    const evalSteps = stepsOf(args.evalSteps ?? args.loggingSteps, maxSteps);
    const started = Date.now();
    let tokensSeen = runLog.state.num_input_tokens_seen;
    let sessionTokens = 0;
    let lossSinceLog = 0;
    let stepsSinceLog = 0;
    let microBatchesSinceLog = 0;
    const metricsSinceLog = new Map<string, number>();
    const summarize = this.objective.summarizeMetrics?.bind(this.objective) ?? meanMetrics;
    let lastLoss = NaN;
    let totalLoss = 0;
    let epochBatches: { epoch: number; batches: number[][] } | undefined;
    let stepsThisSession = 0;

    while (globalStep < maxSteps) {
      if (options.stopAfterSteps !== undefined && stepsThisSession >= options.stopAfterSteps) break;
      if (blocks?.changesAt(globalStep + 1)) {
        // BAdam: the finished block's values become base weights; the next block trains from zero state.
        blocks.retire(this.values);
        blocks.activate(globalStep + 1, this.log);
        await gradProgram.release();
        await updateProgram.release();
        await this.evalProgram?.release();
        this.evalProgram = undefined;
        const kept = new Map([...this.values].filter(([name]) => gradProgram.objectiveParameters.includes(name)));
        ({ gradProgram, updateProgram } = await this.buildPrograms());
        names = gradProgram.parameters.map((p) => p.name);
        this.values = new Map(names.map((name) => [name, kept.get(name) ?? gradProgram.initial(name)]));
        this.optimizerState = updateProgram.initialState();
      }
      const epoch = Math.floor(globalStep / updatesPerEpoch);
      const inEpoch = globalStep % updatesPerEpoch;
      if (!epochBatches || epochBatches.epoch !== epoch) epochBatches = { epoch, batches: sampler.epoch(epoch) };
      const micro = epochBatches.batches
        .slice(inEpoch * args.gradientAccumulationSteps, (inEpoch + 1) * args.gradientAccumulationSteps)
        .map((indices) => options.dataCollator(indices.map((i) => options.trainDataset[i])));
      const weight = micro.reduce((sum, batch) => sum + this.objective.weight(batch), 0);
      if (weight === 0) throw new TunekitError(`Optimizer step ${globalStep + 1} has no counted label tokens: check the dataset's labels (train_on_prompt, cutoff_len).`);

      const accumulated = new Map<string, Float32Array>();
      let lossSum = 0;
      for (const [index, batch] of micro.entries()) {
        const result = await gradProgram.run(batch, 1 / weight, this.values, dropoutSeed(args.seed, globalStep, index));
        lossSum += result.lossSum;
        for (const [name, value] of Object.entries(result.metrics)) metricsSinceLog.set(name, (metricsSinceLog.get(name) ?? 0) + value);
        microBatchesSinceLog += 1;
        for (const [name, g] of result.grads) {
          const acc = accumulated.get(name);
          if (acc) addInto(acc, g);
          else accumulated.set(name, g);
        }
        const real = realTokens(batch);
        tokensSeen += real;
        sessionTokens += real;
      }
      await optimizer.beforeStep?.({ step: globalStep + 1, parameters: gradProgram.parameters, grads: accumulated, state: this.optimizerState });
      // A block optimizer's state (and Adam's bias correction) counts from the step its block became active.
      const optimizerStep = globalStep + 1 - (blocks?.current?.since ?? 1) + 1;
      const update = await updateProgram.run(this.values, accumulated, this.optimizerState, lrAt(globalStep), optimizerStep);
      this.values = update.values;
      this.optimizerState = update.state;
      globalStep += 1;
      stepsThisSession += 1;
      const stepLoss = lossSum / weight;
      lastLoss = stepLoss;
      totalLoss += stepLoss;
      lossSinceLog += stepLoss;
      stepsSinceLog += 1;
      const epochFloat = epoch + (inEpoch + 1) / updatesPerEpoch;
      runLog.advance({ globalStep, epoch: epochFloat, numInputTokensSeen: tokensSeen });
      progress.update({ step: globalStep, loss: stepLoss, learningRate: lrAt(globalStep), tokensSeen: sessionTokens });
      for (const callback of callbacks) await callback.onStepEnd?.(state());

      const endOfEpoch = inEpoch + 1 === updatesPerEpoch;
      if ((loggingSteps > 0 && globalStep % loggingSteps === 0) || (args.loggingFirstStep && globalStep === 1)) {
        const logs: Record<string, number> = { loss: Math.round((lossSinceLog / stepsSinceLog) * 1e4) / 1e4 };
        if (update.gradNorm !== undefined) logs.grad_norm = update.gradNorm;
        logs.learning_rate = lrAt(globalStep);
        if (microBatchesSinceLog > 0) Object.assign(logs, summarize(metricsSinceLog, microBatchesSinceLog));
        metricsSinceLog.clear();
        microBatchesSinceLog = 0;
        runLog.log(logs);
        const shown = Object.fromEntries((this.objective.progressMetrics ?? []).filter((name) => name in logs).map((name) => [name, logs[name]]));
        progress.logStep({ step: globalStep, loss: logs.loss, learningRate: logs.learning_rate, tokensSeen: sessionTokens, metrics: shown });
        for (const callback of callbacks) await callback.onLog?.(state(), logs);
        lossSinceLog = 0;
        stepsSinceLog = 0;
      }
      const evalDue = (args.evalStrategy === 'steps' && evalSteps > 0 && globalStep % evalSteps === 0) || (args.evalStrategy === 'epoch' && endOfEpoch);
      if (evalDue && options.evalDataset) {
        const metrics = await this.evaluate();
        runLog.log(metrics);
        for (const callback of callbacks) await callback.onEvaluate?.(state(), metrics);
        const key = args.metricForBestModel ?? 'loss';
        const value = metrics[key.startsWith('eval_') ? key : `eval_${key}`];
        if (value !== undefined) runLog.updateBestMetric(value, args.greaterIsBetter ?? !/loss/.test(key));
      }
      const saveDue = (args.saveStrategy === 'steps' && saveSteps > 0 && globalStep % saveSteps === 0) || (args.saveStrategy === 'epoch' && endOfEpoch);
      if (saveDue) {
        const dir = this.saveCheckpoint(globalStep, runLog);
        for (const callback of callbacks) await callback.onSave?.(state(), dir);
      }
    }
    progress.finish();

    const finished = globalStep >= maxSteps;
    const seconds = (Date.now() - started) / 1000;
    const metrics: Metrics = {
      ...speedMetrics('train', seconds, { samples: stepsThisSession * args.gradientAccumulationSteps * args.perDeviceTrainBatchSize, steps: stepsThisSession }),
      train_loss: stepsThisSession ? totalLoss / stepsThisSession : NaN,
      epoch: runLog.state.epoch,
    };
    if (finished) {
      const best = runLog.state.best_model_checkpoint;
      if (args.loadBestModelAtEnd && best && fs.existsSync(best)) {
        // load_best_model_at_end: the saved model is the best checkpoint's, not the last step's.
        blocks?.loadBase(best);
        this.values = readCheckpointWeights(best, [...this.values.keys()]);
        this.log(`Loading best model from ${best} (${args.metricForBestModel ?? 'loss'}: ${runLog.state.best_metric}).`);
      }
      this.saveModel(args.outputDir);
      runLog.writeTrainerState();
      saveMetrics(args.outputDir, 'train', metrics);
      if (args.plotLoss) {
        const keys = ['loss', ...(options.evalDataset && args.evalStrategy !== 'no' ? ['eval_loss'] : [])];
        const plotted = plotLoss(args.outputDir, keys);
        for (const key of plotted.missing) this.log(`No metric ${key} to plot.`);
      }
      for (const callback of callbacks) await callback.onTrainEnd?.(state());
    }
    await gradProgram.release();
    await updateProgram.release();
    await optimizer.release?.();
    await this.evalProgram?.release();
    this.evalProgram = undefined;
    return { globalStep, trainingLoss: finished ? metrics.train_loss : lastLoss, metrics };
  }

  /** The gradient and update programs for the model's trainable tensors as they are now. */
  private async buildPrograms(): Promise<{ gradProgram: GradProgram; updateProgram: UpdateProgram }> {
    const { options, args } = this;
    const session = options.sessionOptions ?? {};
    const gradProgram = await GradProgram.create(options.model, this.objective, { session, neftuneAlpha: args.neftuneNoiseAlpha });
    const names = gradProgram.parameters.map((p) => p.name);
    this.shapes = new Map(gradProgram.parameters.map((p) => [p.name, p.shape]));
    const optimizer = options.optimizers.optimizer;
    const maxGradNorm = optimizer.gradientClipping === false ? 0 : args.maxGradNorm;
    const updateProgram = await UpdateProgram.create(gradProgram.parameters, optimizer, this.parameterGroups(names), { maxGradNorm, session });
    this.stateShapes = updateProgram.stateShapes;
    return { gradProgram, updateProgram };
  }

  /** How much optimizer state the run keeps (what GaLore and BAdam save against AdamW). */
  private logStateSize(): void {
    let values = 0;
    for (const shape of this.stateShapes.values()) values += shape.reduce((a, b) => a * b, 1);
    this.log(`optimizer state: ${this.stateShapes.size} tensors, ${((values * 4) / 2 ** 20).toFixed(2)} MiB`);
  }

  /**
   * eval_loss (the objective's loss over the whole evaluation set: for language modelling the mean over every counted
   * token), the objective's metrics averaged over batches, and with compute_accuracy LLaMA-Factory's token accuracy.
   */
  async evaluate(dataset: readonly E[] | undefined = this.options.evalDataset, prefix = 'eval'): Promise<Metrics> {
    const { options, args } = this;
    if (!dataset?.length) throw new TunekitError(`${prefix === 'eval' ? 'evaluate()' : 'predict()'} needs a dataset: set val_size or eval_dataset.`);
    this.evalProgram ??= await EvalProgram.create(options.model, this.objective, { session: options.sessionOptions ?? {}, accuracy: args.computeAccuracy });
    let lossSum = 0;
    let weight = 0;
    let batches = 0;
    const metricSums = new Map<string, number>();
    const correct: number[] = [];
    const rowCounted: number[] = [];
    for (let i = 0; i < dataset.length; i += args.perDeviceEvalBatchSize) {
      const batch = options.dataCollator(dataset.slice(i, i + args.perDeviceEvalBatchSize));
      const result = await this.evalProgram.run(batch, this.values);
      lossSum += result.lossSum;
      weight += this.objective.weight(batch);
      batches += 1;
      for (const [name, value] of Object.entries(result.metrics)) metricSums.set(name, (metricSums.get(name) ?? 0) + value);
      if (result.correct && result.rowCounted) {
        correct.push(...result.correct);
        rowCounted.push(...result.rowCounted);
      }
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
    return metrics;
  }

  /**
   * The Hugging Face Trainer's predict() for a test set: its metrics under the `test_` prefix (test_loss, and
   * test_accuracy with compute_accuracy). Generated text comes from do_predict with predict_with_generate (the
   * recipe's generation engine), not from here; logits are not returned.
   */
  async predict(testDataset: readonly E[]): Promise<{ metrics: Metrics }> {
    return { metrics: await this.evaluate(testDataset, 'test') };
  }

  private saveCheckpoint(step: number, runLog: RunLog): string {
    const { args } = this;
    const writer = beginCheckpoint(args.outputDir, step);
    try {
      this.saveModel(writer.dir);
      if (!args.saveOnlyModel) {
        saveOptimizerState(writer.pathOf(OPTIMIZER_STATE_FILE), this.optimizerState, (key) => this.stateShapes.get(key)!);
        writer.writeJson('scheduler.json', { last_epoch: step });
      }
      const dir = writer.commit(runLog.state);
      rotateCheckpoints(args.outputDir, args.saveTotalLimit, runLog.state.best_model_checkpoint);
      return dir;
    } catch (error) {
      writer.abort();
      throw error;
    }
  }

  /** The trained model (or adapter) and the objective's own tensors (a value head) into `dir`. */
  private saveModel(dir: string): void {
    const { options } = this;
    saveTrainedModel(dir, { model: options.model, modelDir: options.modelDir, tuner: options.tuner, values: this.values, tokenizer: options.tokenizer });
    this.objective.save?.(dir, this.values);
  }

  private readOptimizerState(checkpoint: string, update: UpdateProgram): Map<string, Float32Array> {
    const file = path.join(checkpoint, OPTIMIZER_STATE_FILE);
    if (!fs.existsSync(file)) {
      throw new TunekitError(`${checkpoint} has no ${OPTIMIZER_STATE_FILE} (it was saved with save_only_model): it cannot resume training exactly. Start a new run from its weights instead.`);
    }
    return readTensorsFrom([file], [...update.initialState().keys()], 'optimizer state');
  }
}
