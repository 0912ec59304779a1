import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Batch } from '@tunekit/data';
import type { GraphOptimizer, SessionOptions } from '@tunekit/graph';
import { TunekitError, type LrSchedulerFactory, type ParameterBlock, type TrainingCallback, type TrainingState, type Tuner } from '@tunekit/kernel';
import { isNoDecayParameter, type CausalLM } from '@tunekit/models';
import { beginCheckpoint, rotateCheckpoints, type CheckpointWriter } from '../outputs/checkpoints';
import { saveMetrics, speedMetrics, type Metrics } from '../outputs/metrics';
import { prepareOutputDir } from '../outputs/output-dir';
import { plotLoss } from '../outputs/plot';
import { ProgressReporter, type ProgressStream } from '../outputs/progress';
import { readTrainerState, RunLog, TRAINER_STATE_NAME } from '../outputs/run-log';
import { stepsOf, type TrainingArguments } from './args';
import { BlockTraining } from './blocks';
import { meanMetrics, type TrainingObjective } from './objective';
import { GradProgram, UpdateProgram, type ParameterGroupSpec } from './programs';
import { OPTIMIZER_STATE_FILE, readCheckpointWeights, readTensorsFrom, saveOptimizerState, saveTrainedModel } from './weights-io';

export interface TrainingRunOptions {
  /** The model with its tuner applied (LoRA wrappers added, trainable parameters chosen). */
  readonly model: CausalLM;
  /** The model folder it came from (config and tokenizer files are copied from it). */
  readonly modelDir: string;
  readonly tokenizer?: { save(dir: string): void };
  readonly tuner: Tuner;
  readonly args: TrainingArguments;
  readonly objective: TrainingObjective;
  readonly optimizers: { readonly optimizer: GraphOptimizer; readonly scheduler: LrSchedulerFactory; readonly schedulerKwargs?: Record<string, unknown> };
  readonly callbacks?: readonly TrainingCallback[];
  readonly sessionOptions?: SessionOptions;
  readonly log?: (line: string) => void;
  readonly progressStream?: ProgressStream;
  /** Stops after this many global steps of this session (tests simulate a crash with it). */
  readonly stopAfterSteps?: number;
  /** Global steps of the whole run, and per epoch. */
  readonly maxSteps: number;
  readonly stepsPerEpoch: number;
  /** Metrics shown on the progress line when logged; default the objective's `progressMetrics`. */
  readonly progressMetrics?: readonly string[];
  /**
   * The logged metrics of a logging window from each metric's sum and count. Default: the objective's
   * `summarizeMetrics` of the micro-batch sums, else each metric's mean per micro-batch.
   */
  readonly summarizeWindow?: (sums: ReadonlyMap<string, number>, counts: ReadonlyMap<string, number>) => Record<string, number>;
  /** Samples one global step consumes (train_samples_per_second). */
  readonly samplesPerStep: number;
  /** Files a checkpoint holds beside the weights, optimizer state and schedule (an RL stage's state), by name. */
  readonly checkpointFiles?: () => Record<string, string>;
  /** Reads what `checkpointFiles` wrote, when the run resumes from `checkpoint`. */
  readonly restore?: (checkpoint: string) => void;
  /**
   * How many optimizer updates the checkpoint a run resumes from had made (block optimizers choose their block from
   * the next one); default: its global step (one update per step).
   */
  readonly resumedUpdates?: (checkpoint: string, globalStep: number) => number;
}

/** What a caller of a training run sets up: the model, tuner, arguments, optimizer and where output goes. */
export type RunSetup = Pick<
  TrainingRunOptions,
  'model' | 'modelDir' | 'tokenizer' | 'tuner' | 'args' | 'optimizers' | 'callbacks' | 'sessionOptions' | 'log' | 'progressStream' | 'stopAfterSteps'
>;

/** What one optimizer update over a step's micro-batches gives the caller. */
export interface UpdateOutcome {
  /** The sum of the micro-batches' loss sums (not scaled). */
  readonly lossSum: number;
  /** Each metric summed over the micro-batches. */
  readonly metricSums: Map<string, number>;
  readonly gradNorm?: number;
}

/** Parameter groups as the Trainer builds them: decay / no decay, times the tuner's learning-rate scales (LoRA+). */
export function parameterGroups(names: readonly string[], weightDecay: number, tuner: Tuner): ParameterGroupSpec[] {
  const groups = new Map<string, { names: string[]; weightDecay: number; lrScale: number }>();
  for (const name of names) {
    const decay = isNoDecayParameter(name) ? 0 : weightDecay;
    const lrScale = tuner.lrScale?.(name) ?? 1;
    const key = `${decay}|${lrScale}`;
    const group = groups.get(key) ?? { names: [], weightDecay: decay, lrScale };
    group.names.push(name);
    groups.set(key, group);
  }
  return [...groups.values()];
}

function addInto(target: Float32Array, source: Float32Array): void {
  for (let i = 0; i < target.length; i++) target[i] += source[i];
}

/** Sums of logged values over a logging window, with a count per name. */
class LogWindow {
  loss = 0;
  steps = 0;
  microBatches = 0;
  readonly sums = new Map<string, number>();
  readonly counts = new Map<string, number>();

  add(name: string, value: number): void {
    this.sums.set(name, (this.sums.get(name) ?? 0) + value);
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
  }

  clear(): void {
    this.loss = 0;
    this.steps = 0;
    this.microBatches = 0;
    this.sums.clear();
    this.counts.clear();
  }
}

/**
 * One training run's machinery, shared by the Trainer (pt, sft, rm, dpo, kto) and the online RL loop: the output
 * folder, the learning-rate schedule, the gradient and update programs with the trainable values and optimizer state
 * (started fresh or restored from a checkpoint), block switching for block optimizers (BAdam), and after each global
 * step the Hugging Face Trainer's logging, evaluation and checkpoint strategies. The caller owns what a step is.
 */
export class TrainingRun {
  values = new Map<string, Float32Array>();
  private optimizerState = new Map<string, Float32Array>();
  globalStep = 0;
  private stepsThisSession = 0;
  private readonly window = new LogWindow();
  private totalLoss = 0;
  private lastLoss = NaN;
  private tokensSeen = 0;
  private sessionTokens = 0;
  private readonly started = Date.now();
  private readonly log: (line: string) => void;
  private readonly lrMultiplier: (step: number) => number;

  private constructor(
    private readonly options: TrainingRunOptions,
    private gradProgram: GradProgram,
    private updateProgram: UpdateProgram,
    private readonly blocks: BlockTraining | undefined,
    private readonly runLog: RunLog,
    private readonly progress: ProgressReporter,
  ) {
    this.log = options.log ?? (() => {});
    const { args } = options;
    const warmupSteps = args.warmupSteps > 0 ? args.warmupSteps : Math.ceil(args.warmupRatio * options.maxSteps);
    const schedule = options.optimizers.scheduler.create({ totalSteps: options.maxSteps, warmupSteps, baseLr: args.learningRate, kwargs: options.optimizers.schedulerKwargs ?? {} });
    this.lrMultiplier = (step) => schedule.multiplier(step);
    this.tokensSeen = runLog.state.num_input_tokens_seen;
    this.globalStep = runLog.state.global_step;
  }

  /** Prepares the output folder, builds the programs, and starts (or resumes) the trainable values and state. */
  static async start(options: TrainingRunOptions): Promise<TrainingRun> {
    const { args } = options;
    const log = options.log ?? (() => {});
    const prepared = prepareOutputDir(args.outputDir, { overwrite: args.overwriteOutputDir, resume: args.resumeFromCheckpoint });
    const optimizer = options.optimizers.optimizer;
    const blocks = optimizer.activeBlock ? new BlockTraining(options.model, options.tuner, optimizer) : undefined;
    const resumedStep = prepared.resumeFrom ? readTrainerState(path.join(prepared.resumeFrom, TRAINER_STATE_NAME)).global_step : 0;
    const firstUpdate = (prepared.resumeFrom && options.resumedUpdates ? options.resumedUpdates(prepared.resumeFrom, resumedStep) : resumedStep) + 1;
    let block: ParameterBlock | undefined;
    if (blocks) {
      // Blocks trained before the checkpoint live in its model weights, not in any program's trainable values.
      if (prepared.resumeFrom) blocks.loadBase(prepared.resumeFrom);
      block = blocks.activate(firstUpdate, log);
    }
    const { gradProgram, updateProgram } = await TrainingRun.programs(options);
    const logOptions = {
      outputDir: args.outputDir,
      maxSteps: options.maxSteps,
      numTrainEpochs: Math.ceil(options.maxSteps / options.stepsPerEpoch),
      loggingSteps: args.loggingSteps,
      evalSteps: args.evalSteps ?? args.loggingSteps,
      saveSteps: args.saveSteps,
      trainBatchSize: args.perDeviceTrainBatchSize,
      includeNumInputTokensSeen: args.includeNumInputTokensSeen,
    };
    const runLog = prepared.resumeFrom ? RunLog.resume(prepared.resumeFrom, logOptions) : new RunLog(logOptions);
    const progress = new ProgressReporter({ stream: options.progressStream ?? process.stdout, totalSteps: options.maxSteps });
    const run = new TrainingRun(options, gradProgram, updateProgram, blocks, runLog, progress);
    run.logSizes();
    const names = gradProgram.parameters.map((p) => p.name);
    if (prepared.resumeFrom) {
      run.values = readCheckpointWeights(prepared.resumeFrom, names);
      // A block that becomes active right at the resumed update starts with fresh state, as it would have.
      run.optimizerState = block?.since === firstUpdate ? updateProgram.initialState() : run.readOptimizerState(prepared.resumeFrom);
      options.restore?.(prepared.resumeFrom);
      log(`Resuming from ${prepared.resumeFrom} at step ${run.globalStep}.`);
    } else {
      run.values = new Map(names.map((name) => [name, gradProgram.initial(name)]));
      run.optimizerState = updateProgram.initialState();
    }
    runLog.beginTraining();
    progress.start(run.globalStep);
    for (const callback of options.callbacks ?? []) await callback.onTrainBegin?.(run.state());
    return run;
  }

  private static async programs(options: TrainingRunOptions): Promise<{ gradProgram: GradProgram; updateProgram: UpdateProgram }> {
    const session = options.sessionOptions ?? {};
    const gradProgram = await GradProgram.create(options.model, options.objective, { session, neftuneAlpha: options.args.neftuneNoiseAlpha });
    return { gradProgram, updateProgram: await TrainingRun.updateProgramFor(options, gradProgram) };
  }

  private static updateProgramFor(options: TrainingRunOptions, gradProgram: GradProgram): Promise<UpdateProgram> {
    const { args } = options;
    const names = gradProgram.parameters.map((p) => p.name);
    const optimizer = options.optimizers.optimizer;
    // Layer-wise GaLore steps each parameter as its gradient arrives: no global norm, so no clipping (LLaMA-Factory).
    const maxGradNorm = optimizer.gradientClipping === false ? 0 : args.maxGradNorm;
    return UpdateProgram.create(gradProgram.parameters, optimizer, parameterGroups(names, args.weightDecay, options.tuner), { maxGradNorm, session: options.sessionOptions ?? {} });
  }

  /** The trainable parameter count (as LLaMA-Factory prints it) and how much optimizer state the run keeps. */
  private logSizes(): void {
    const { options, gradProgram } = this;
    const size = (p: { shape: readonly number[] }) => p.shape.reduce((a, b) => a * b, 1);
    const trainable = (this.blocks?.trainableSize ?? 0) || gradProgram.parameters.reduce((sum, p) => sum + size(p), 0);
    const objectiveOwn = gradProgram.parameters.filter((p) => gradProgram.objectiveParameters.includes(p.name)).reduce((sum, p) => sum + size(p), 0);
    const total = options.model.parameters().reduce((sum, p) => sum + size(p), 0) + (options.tuner.addsAdapters ? trainable - objectiveOwn : 0) + objectiveOwn;
    this.log(`trainable params: ${trainable.toLocaleString('en-US')} || all params: ${total.toLocaleString('en-US')} || trainable%: ${((100 * trainable) / total).toFixed(4)}`);
    let values = 0;
    const shapes = this.updateProgram.stateShapes;
    for (const shape of shapes.values()) values += shape.reduce((a, b) => a * b, 1);
    this.log(`optimizer state: ${shapes.size} tensors, ${((values * 4) / 2 ** 20).toFixed(2)} MiB`);
  }

  /** The scheduled learning rate after `step` global steps. */
  lrAt(step: number): number {
    return this.options.args.learningRate * this.lrMultiplier(step);
  }

  get maxSteps(): number {
    return this.options.maxSteps;
  }

  /** Whether another global step is due (not at max steps, not stopped by `stopAfterSteps`). */
  get running(): boolean {
    const stop = this.options.stopAfterSteps;
    return this.globalStep < this.options.maxSteps && (stop === undefined || this.stepsThisSession < stop);
  }

  /** The names of the objective's own trainable tensors (a value head). */
  get objectiveParameters(): readonly string[] {
    return this.gradProgram.objectiveParameters;
  }

  state(): TrainingState {
    return { globalStep: this.globalStep, maxSteps: this.options.maxSteps, epoch: this.runLog.state.epoch };
  }

  /**
   * One optimizer update: the gradients of the micro-batches, each scaled by `lossScale` and summed, then the
   * optimizer's host-side hook and its update at the scheduled learning rate of the current global step.
   * `updateNumber` is the optimizer's 1-based update count (the global step + 1 for the Trainer); `seed(i)` the dropout
   * seed of micro-batch i.
   */
  async update(batches: readonly Batch[], settings: { lossScale: number; updateNumber: number; seed: (index: number) => bigint }): Promise<UpdateOutcome> {
    await this.switchBlock(settings.updateNumber);
    const accumulated = new Map<string, Float32Array>();
    const metricSums = new Map<string, number>();
    let lossSum = 0;
    for (const [index, batch] of batches.entries()) {
      const result = await this.gradProgram.run(batch, settings.lossScale, this.values, settings.seed(index));
      lossSum += result.lossSum;
      for (const [name, value] of Object.entries(result.metrics)) metricSums.set(name, (metricSums.get(name) ?? 0) + value);
      for (const [name, g] of result.grads) {
        const acc = accumulated.get(name);
        if (acc) addInto(acc, g);
        else accumulated.set(name, g);
      }
    }
    const optimizer = this.options.optimizers.optimizer;
    await optimizer.beforeStep?.({ step: settings.updateNumber, parameters: this.gradProgram.parameters, grads: accumulated, state: this.optimizerState });
    // A block optimizer's state (and Adam's bias correction) counts from the update its block became active.
    const optimizerStep = settings.updateNumber - (this.blocks?.current?.since ?? 1) + 1;
    // In place, chunk by chunk: the previous values and state are released as their replacements arrive.
    const gradNorm = await this.updateProgram.step(this.values, accumulated, this.optimizerState, this.lrAt(this.globalStep), optimizerStep);
    return { lossSum, metricSums, gradNorm };
  }

  /** BAdam: before an update in another block, the finished block's values become base weights and programs are rebuilt. */
  private async switchBlock(updateNumber: number): Promise<void> {
    const blocks = this.blocks;
    const change = blocks?.changeAt(updateNumber);
    if (!blocks || !change) return;
    if (change === 'restart') {
      // The same parameters train on: only the update (which may depend on the activation) and its state start anew.
      blocks.activate(updateNumber, this.log);
      await this.updateProgram.release();
      this.updateProgram = await TrainingRun.updateProgramFor(this.options, this.gradProgram);
      this.optimizerState = this.updateProgram.initialState();
      return;
    }
    blocks.retire(this.values);
    blocks.activate(updateNumber, this.log);
    const own = this.gradProgram.objectiveParameters;
    const kept = new Map([...this.values].filter(([name]) => own.includes(name)));
    await this.gradProgram.release();
    await this.updateProgram.release();
    ({ gradProgram: this.gradProgram, updateProgram: this.updateProgram } = await TrainingRun.programs(this.options));
    this.values = new Map(this.gradProgram.parameters.map((p) => [p.name, kept.get(p.name) ?? this.gradProgram.initial(p.name)]));
    this.optimizerState = this.updateProgram.initialState();
    await this.onProgramsChanged?.();
  }

  /** Called after the programs were rebuilt (the Trainer drops its evaluation program, built for the old trainable set). */
  onProgramsChanged?: () => Promise<void>;

  /**
   * Records a finished global step: the run log and progress line, then the logging, evaluation and save strategies.
   * `metrics` holds values to average over the logging window, one entry per micro-batch (or per step); `evaluate`
   * gives the evaluation metrics (eval_ prefixed) when one is due.
   */
  async endStep(step: {
    loss: number;
    metrics: Iterable<readonly [string, number]>;
    microBatches: number;
    tokens: number;
    gradNorm?: number;
    evaluate?: () => Promise<Metrics>;
  }): Promise<void> {
    const { args, callbacks = [] } = this.options;
    const stepsPerEpoch = this.options.stepsPerEpoch;
    const inEpoch = this.globalStep % stepsPerEpoch;
    const epoch = Math.floor(this.globalStep / stepsPerEpoch);
    this.globalStep += 1;
    this.stepsThisSession += 1;
    this.lastLoss = step.loss;
    this.totalLoss += step.loss;
    this.window.loss += step.loss;
    this.window.steps += 1;
    this.window.microBatches += step.microBatches;
    for (const [name, value] of step.metrics) this.window.add(name, value);
    this.tokensSeen += step.tokens;
    this.sessionTokens += step.tokens;
    const globalStep = this.globalStep;
    const endOfEpoch = inEpoch + 1 === stepsPerEpoch;
    this.runLog.advance({ globalStep, epoch: epoch + (inEpoch + 1) / stepsPerEpoch, numInputTokensSeen: this.tokensSeen });
    this.progress.update({ step: globalStep, loss: step.loss, learningRate: this.lrAt(globalStep), tokensSeen: this.sessionTokens });
    for (const callback of callbacks) await callback.onStepEnd?.(this.state());

    const maxSteps = this.options.maxSteps;
    const loggingSteps = stepsOf(args.loggingSteps, maxSteps);
    if ((loggingSteps > 0 && globalStep % loggingSteps === 0) || (args.loggingFirstStep && globalStep === 1)) {
      const logs: Record<string, number> = { loss: Math.round((this.window.loss / this.window.steps) * 1e4) / 1e4 };
      if (step.gradNorm !== undefined) logs.grad_norm = step.gradNorm;
      logs.learning_rate = this.lrAt(globalStep);
      Object.assign(logs, this.summarizeWindow());
      this.window.clear();
      this.runLog.log(logs);
      const shown = Object.fromEntries((this.options.progressMetrics ?? this.options.objective.progressMetrics ?? []).filter((name) => name in logs).map((name) => [name, logs[name]]));
      this.progress.logStep({ step: globalStep, loss: logs.loss, learningRate: logs.learning_rate, tokensSeen: this.sessionTokens, metrics: shown });
      for (const callback of callbacks) await callback.onLog?.(this.state(), logs);
    }
    const evalSteps = stepsOf(args.evalSteps ?? args.loggingSteps, maxSteps);
    const evalDue = (args.evalStrategy === 'steps' && evalSteps > 0 && globalStep % evalSteps === 0) || (args.evalStrategy === 'epoch' && endOfEpoch);
    if (evalDue && step.evaluate) {
      const metrics = await step.evaluate();
      this.runLog.log(metrics);
      for (const callback of callbacks) await callback.onEvaluate?.(this.state(), metrics);
      const key = args.metricForBestModel ?? 'loss';
      const value = metrics[key.startsWith('eval_') ? key : `eval_${key}`];
      if (value !== undefined) this.runLog.updateBestMetric(value, args.greaterIsBetter ?? !/loss/.test(key));
    }
    const saveSteps = stepsOf(args.saveSteps, maxSteps);
    const saveDue = (args.saveStrategy === 'steps' && saveSteps > 0 && globalStep % saveSteps === 0) || (args.saveStrategy === 'epoch' && endOfEpoch);
    if (saveDue) {
      const dir = this.saveCheckpoint(globalStep);
      for (const callback of callbacks) await callback.onSave?.(this.state(), dir);
    }
  }

  /** The logging window's metrics (see `TrainingRunOptions.summarizeWindow`). */
  private summarizeWindow(): Record<string, number> {
    const { sums, counts, microBatches } = this.window;
    if (this.options.summarizeWindow) return sums.size ? this.options.summarizeWindow(sums, counts) : {};
    if (microBatches === 0) return {};
    return (this.options.objective.summarizeMetrics?.bind(this.options.objective) ?? meanMetrics)(sums, microBatches);
  }

  /**
   * Ends the run: when every step ran, the final model (the best checkpoint's with load_best_model_at_end), the
   * trainer state, train_results.json and the loss plots of `plotKeys`; then frees the programs.
   */
  async finish(plotKeys: readonly string[]): Promise<{ globalStep: number; trainingLoss: number; metrics: Metrics }> {
    const { args, callbacks = [] } = this.options;
    this.progress.finish();
    const finished = this.globalStep >= this.options.maxSteps;
    const seconds = (Date.now() - this.started) / 1000;
    const metrics: Metrics = {
      ...speedMetrics('train', seconds, { samples: this.stepsThisSession * this.options.samplesPerStep, steps: this.stepsThisSession }),
      train_loss: this.stepsThisSession ? this.totalLoss / this.stepsThisSession : NaN,
      epoch: this.runLog.state.epoch,
    };
    if (finished) {
      const best = this.runLog.state.best_model_checkpoint;
      if (args.loadBestModelAtEnd && best && fs.existsSync(best)) {
        // load_best_model_at_end: the saved model is the best checkpoint's, not the last step's.
        this.blocks?.loadBase(best);
        this.values = readCheckpointWeights(best, [...this.values.keys()]);
        this.log(`Loading best model from ${best} (${args.metricForBestModel ?? 'loss'}: ${this.runLog.state.best_metric}).`);
      }
      this.saveModel(args.outputDir);
      this.runLog.writeTrainerState();
      saveMetrics(args.outputDir, 'train', metrics);
      if (args.plotLoss) {
        const plotted = plotLoss(args.outputDir, plotKeys);
        for (const key of plotted.missing) this.log(`No metric ${key} to plot.`);
      }
      for (const callback of callbacks) await callback.onTrainEnd?.(this.state());
    }
    await this.release();
    return { globalStep: this.globalStep, trainingLoss: finished ? metrics.train_loss : this.lastLoss, metrics };
  }

  private released = false;

  /** Frees the programs and what the optimizer's hooks opened (once; later calls do nothing). */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.gradProgram.release();
    await this.updateProgram.release();
    await this.options.optimizers.optimizer.release?.();
  }

  private saveCheckpoint(step: number): string {
    const { args } = this.options;
    const writer: CheckpointWriter = beginCheckpoint(args.outputDir, step);
    try {
      this.saveModel(writer.dir);
      if (!args.saveOnlyModel) {
        saveOptimizerState(writer.pathOf(OPTIMIZER_STATE_FILE), this.optimizerState, (key) => this.updateProgram.stateShapes.get(key)!);
        writer.writeJson('scheduler.json', { last_epoch: step });
        for (const [name, text] of Object.entries(this.options.checkpointFiles?.() ?? {})) writer.writeFile(name, text);
      }
      const dir = writer.commit(this.runLog.state);
      rotateCheckpoints(args.outputDir, args.saveTotalLimit, this.runLog.state.best_model_checkpoint);
      return dir;
    } catch (error) {
      writer.abort();
      throw error;
    }
  }

  /** The trained model (or adapter) and the objective's own tensors (a value head) into `dir`. */
  saveModel(dir: string): void {
    const { options } = this;
    saveTrainedModel(dir, { model: options.model, modelDir: options.modelDir, tuner: options.tuner, values: this.values, tokenizer: options.tokenizer });
    options.objective.save?.(dir, this.values);
  }

  private readOptimizerState(checkpoint: string): Map<string, Float32Array> {
    const file = path.join(checkpoint, OPTIMIZER_STATE_FILE);
    if (!fs.existsSync(file)) {
      throw new TunekitError(`${checkpoint} has no ${OPTIMIZER_STATE_FILE} (it was saved with save_only_model): it cannot resume training exactly. Start a new run from its weights instead.`);
    }
    return readTensorsFrom([file], [...this.updateProgram.initialState().keys()], 'optimizer state');
  }
}
