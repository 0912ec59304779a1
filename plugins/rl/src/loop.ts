import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Batch, UnsupervisedExample } from '@tunekit/data';
import { Graph, writeSafetensors, type GraphOptimizer, type SessionOptions } from '@tunekit/graph';
import { NotBuiltError, TunekitError, type LrSchedulerFactory, type TrainingCallback, type TrainingState, type Tuner } from '@tunekit/kernel';
import { createRng, dropoutSeed, isNoDecayParameter, SafetensorsWeights, type CausalLM, type Rng } from '@tunekit/models';
import {
  BatchSampler,
  beginCheckpoint,
  GradProgram,
  plotLoss,
  prepareOutputDir,
  ProgressReporter,
  readCheckpointWeights,
  rotateCheckpoints,
  RunLog,
  saveMetrics,
  saveTrainedModel,
  speedMetrics,
  stepsOf,
  totalOptimizerSteps,
  UpdateProgram,
  type Metrics,
  type ParameterGroupSpec,
  type ProgressStream,
  type TrainingArguments,
  type TrainingObjective,
  type TrainOutput,
} from '@tunekit/trainer';

/** What an algorithm may do during one step of the loop. */
export interface RlStepContext {
  /** The 1-based global step being run. */
  readonly step: number;
  /** Which of the algorithm's `iterationsPerBatch` steps on the same prompts this is (0: the first). */
  readonly iteration: number;
  /** The policy's (and value head's) current values, by name. */
  values(): ReadonlyMap<string, Float32Array>;
  /** The step's random stream (sampling), derived from the seed and the step so a resumed run draws the same. */
  readonly rng: Rng;
  /**
   * One optimizer update: the gradient of the mean loss over `batches` (each batch's loss a mean over its rows),
   * clipped and applied. Returns the mean loss and metrics over the batches.
   */
  update(batches: readonly Batch[]): Promise<{ loss: number; metrics: Record<string, number> }>;
}

export interface RlStepResult {
  /** The step's loss, as logged (`loss`). */
  readonly loss: number;
  /** The step's metrics (TRL's names); averaged over the logging window. */
  readonly metrics: Record<string, number>;
  /** Tokens the step's rollouts held (prompts and completions), for throughput. */
  readonly tokens: number;
}

/** An online RL algorithm on the shared loop: rollouts, rewards and updates of one step, and its own state. */
export interface RlAlgorithm {
  /** What the update programs train. */
  readonly objective: TrainingObjective;
  /** Prompts one step consumes. */
  readonly promptsPerStep: number;
  /**
   * Consecutive steps given the same prompts (GRPO's num_iterations: its rollouts are reused that many times, as
   * TRL's repeat sampler repeats each batch); default 1.
   */
  readonly iterationsPerBatch?: number;
  /** Metrics shown on the progress line. */
  readonly progressMetrics: readonly string[];
  /** Metrics plotted beside the loss (plot_loss). */
  readonly plotted: readonly string[];
  step(prompts: readonly UnsupervisedExample[], context: RlStepContext): Promise<RlStepResult>;
  /** Metrics of the held-out prompts (without the `eval_` prefix). */
  evaluate(prompts: readonly UnsupervisedExample[], values: ReadonlyMap<string, Float32Array>): Promise<Record<string, number>>;
  /** State saved with each checkpoint (KL controller, running score moments); restored on resume. */
  state(): Record<string, unknown>;
  restore(state: Record<string, unknown>): void;
  release(): Promise<void>;
}

export interface RolloutLoopOptions {
  readonly model: CausalLM;
  readonly modelDir: string;
  readonly tuner: Tuner;
  readonly tokenizer?: { save(dir: string): void };
  readonly args: TrainingArguments;
  readonly algorithm: RlAlgorithm;
  readonly prompts: readonly UnsupervisedExample[];
  readonly evalPrompts?: readonly UnsupervisedExample[];
  readonly optimizers: { readonly optimizer: GraphOptimizer; readonly scheduler: LrSchedulerFactory; readonly schedulerKwargs?: Record<string, unknown> };
  readonly callbacks?: readonly TrainingCallback[];
  readonly sessionOptions?: SessionOptions;
  readonly log?: (line: string) => void;
  readonly progressStream?: ProgressStream;
  /** Stops after this many steps of this session (tests simulate a crash with it). */
  readonly stopAfterSteps?: number;
}

/** The algorithm's state and the optimizer update count, saved in every checkpoint beside the optimizer state. */
export const RL_STATE_FILE = 'rl_state.json';
/** The optimizer state's file in a checkpoint (the Trainer's name). */
const OPTIMIZER_STATE_FILE = 'optimizer.safetensors';

function addInto(target: Float32Array, source: Float32Array): void {
  for (let i = 0; i < target.length; i++) target[i] += source[i];
}

/**
 * The loop of online RL, as LLaMA-Factory's PPO loop and TRL's trainers run it: each global step takes the next
 * prompts (the Trainer's sampler: shuffled per epoch from the seed), lets the algorithm sample, score and update (one
 * or more optimizer updates), then logs, evaluates and checkpoints on the Trainer's schedules. The learning rate
 * follows the schedule per global step; a checkpoint holds the trained weights (adapter or model, value head), the
 * optimizer state, and the algorithm's state (KL coefficient, score statistics), so a resumed run continues the
 * same curve.
 */
export class RolloutLoop {
  private readonly args: TrainingArguments;
  private readonly log: (line: string) => void;
  private values = new Map<string, Float32Array>();
  private optimizerState = new Map<string, Float32Array>();
  private stateShapes: ReadonlyMap<string, readonly number[]> = new Map();
  private optimizerUpdates = 0;
  private lastGradNorm: number | undefined;

  constructor(private readonly options: RolloutLoopOptions) {
    this.args = options.args;
    this.log = options.log ?? (() => {});
    const optimizer = options.optimizers.optimizer as GraphOptimizer & { beforeStep?: unknown; activeBlock?: unknown };
    if (optimizer.beforeStep || optimizer.activeBlock) throw new NotBuiltError('Online RL (ppo, grpo) with an optimizer that has host-side hooks (GaLore, BAdam)');
  }

  private get iterations(): number {
    return this.options.algorithm.iterationsPerBatch ?? 1;
  }

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

  /**
   * Steps of the run: max_steps, else num_train_epochs passes over the prompts in batches of promptsPerStep, each
   * batch given to iterationsPerBatch consecutive steps.
   */
  private plan(): { sampler: BatchSampler; maxSteps: number; stepsPerEpoch: number } {
    const { args, options } = this;
    const sampler = new BatchSampler(options.prompts.map((p) => p.input_ids.length), {
      batchSize: options.algorithm.promptsPerStep,
      seed: args.dataSeed ?? args.seed,
      shuffle: !args.disableShuffling,
      dropLast: args.dataloaderDropLast,
      groupByLength: false,
    });
    const { maxSteps, updatesPerEpoch } = totalOptimizerSteps({ ...args, gradientAccumulationSteps: 1 }, sampler.batchesPerEpoch * this.iterations);
    return { sampler, maxSteps, stepsPerEpoch: updatesPerEpoch };
  }

  async train(): Promise<TrainOutput> {
    const { args, options } = this;
    const { algorithm } = options;
    const prepared = prepareOutputDir(args.outputDir, { overwrite: args.overwriteOutputDir, resume: args.resumeFromCheckpoint });
    const { sampler, maxSteps, stepsPerEpoch } = this.plan();
    const warmupSteps = args.warmupSteps > 0 ? args.warmupSteps : Math.ceil(args.warmupRatio * maxSteps);
    const schedule = options.optimizers.scheduler.create({ totalSteps: maxSteps, warmupSteps, baseLr: args.learningRate, kwargs: options.optimizers.schedulerKwargs ?? {} });
    const lrAt = (step: number) => args.learningRate * schedule.multiplier(step);

    const session = options.sessionOptions ?? {};
    const gradProgram = await GradProgram.create(options.model, algorithm.objective, { session, neftuneAlpha: args.neftuneNoiseAlpha });
    const names = gradProgram.parameters.map((p) => p.name);
    const updateProgram = await UpdateProgram.create(gradProgram.parameters, options.optimizers.optimizer, this.parameterGroups(names), { maxGradNorm: args.maxGradNorm, session });
    this.stateShapes = updateProgram.stateShapes;
    const trainable = gradProgram.parameters.reduce((sum, p) => sum + p.shape.reduce((a, b) => a * b, 1), 0);
    this.log(`trainable params: ${trainable.toLocaleString('en-US')} (policy ${options.tuner.addsAdapters ? 'adapters' : 'weights'}${gradProgram.objectiveParameters.length ? ' and value head' : ''})`);

    const logOptions = {
      outputDir: args.outputDir,
      maxSteps,
      numTrainEpochs: Math.ceil(maxSteps / stepsPerEpoch),
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
      this.readTrainingState(prepared.resumeFrom, updateProgram);
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
    const metricsSinceLog = new Map<string, { sum: number; count: number }>();
    let totalLoss = 0;
    let lastLoss = NaN;
    let stepsThisSession = 0;
    let epochBatches: { epoch: number; batches: number[][] } | undefined;

    try {
      while (globalStep < maxSteps) {
        if (options.stopAfterSteps !== undefined && stepsThisSession >= options.stopAfterSteps) break;
        const epoch = Math.floor(globalStep / stepsPerEpoch);
        const inEpoch = globalStep % stepsPerEpoch;
        if (!epochBatches || epochBatches.epoch !== epoch) epochBatches = { epoch, batches: sampler.epoch(epoch) };
        const prompts = epochBatches.batches[Math.floor(inEpoch / this.iterations)].map((i) => options.prompts[i]);
        const step = globalStep + 1;
        let updatesThisStep = 0;
        const context: RlStepContext = {
          step,
          iteration: inEpoch % this.iterations,
          values: () => this.values,
          rng: createRng(Number(BigInt.asUintN(32, dropoutSeed(args.seed, step, 0)))),
          update: async (batches) => {
            if (!batches.length) throw new TunekitError('An RL update with no batches.', 1);
            const accumulated = new Map<string, Float32Array>();
            let lossSum = 0;
            const sums = new Map<string, number>();
            for (const [index, batch] of batches.entries()) {
              const result = await gradProgram.run(batch, 1 / batches.length, this.values, dropoutSeed(args.seed, step, updatesThisStep * batches.length + index));
              lossSum += result.lossSum;
              for (const [name, value] of Object.entries(result.metrics)) sums.set(name, (sums.get(name) ?? 0) + value);
              for (const [name, g] of result.grads) {
                const acc = accumulated.get(name);
                if (acc) addInto(acc, g);
                else accumulated.set(name, g);
              }
            }
            updatesThisStep += 1;
            this.optimizerUpdates += 1;
            const update = await updateProgram.run(this.values, accumulated, this.optimizerState, lrAt(globalStep), this.optimizerUpdates);
            this.values = update.values;
            this.optimizerState = update.state;
            this.lastGradNorm = update.gradNorm;
            return { loss: lossSum / batches.length, metrics: Object.fromEntries([...sums].map(([name, sum]) => [name, sum / batches.length])) };
          },
        };
        const result = await algorithm.step(prompts, context);
        globalStep = step;
        stepsThisSession += 1;
        lastLoss = result.loss;
        totalLoss += result.loss;
        lossSinceLog += result.loss;
        stepsSinceLog += 1;
        for (const [name, value] of Object.entries(result.metrics)) {
          if (!Number.isFinite(value)) continue;
          const acc = metricsSinceLog.get(name) ?? { sum: 0, count: 0 };
          metricsSinceLog.set(name, { sum: acc.sum + value, count: acc.count + 1 });
        }
        tokensSeen += result.tokens;
        sessionTokens += result.tokens;
        const endOfEpoch = inEpoch + 1 === stepsPerEpoch;
        runLog.advance({ globalStep, epoch: epoch + (inEpoch + 1) / stepsPerEpoch, numInputTokensSeen: tokensSeen });
        progress.update({ step: globalStep, loss: result.loss, learningRate: lrAt(globalStep), tokensSeen: sessionTokens });
        for (const callback of callbacks) await callback.onStepEnd?.(state());

        if ((loggingSteps > 0 && globalStep % loggingSteps === 0) || (args.loggingFirstStep && globalStep === 1)) {
          const logs: Record<string, number> = { loss: Math.round((lossSinceLog / stepsSinceLog) * 1e4) / 1e4 };
          if (this.lastGradNorm !== undefined) logs.grad_norm = this.lastGradNorm;
          logs.learning_rate = lrAt(globalStep);
          for (const [name, { sum, count }] of metricsSinceLog) logs[name] = sum / count;
          metricsSinceLog.clear();
          runLog.log(logs);
          const shown = Object.fromEntries(algorithm.progressMetrics.filter((name) => name in logs).map((name) => [name, logs[name]]));
          progress.logStep({ step: globalStep, loss: logs.loss, learningRate: logs.learning_rate, tokensSeen: sessionTokens, metrics: shown });
          for (const callback of callbacks) await callback.onLog?.(state(), logs);
          lossSinceLog = 0;
          stepsSinceLog = 0;
        }
        const evalDue = (args.evalStrategy === 'steps' && evalSteps > 0 && globalStep % evalSteps === 0) || (args.evalStrategy === 'epoch' && endOfEpoch);
        if (evalDue && options.evalPrompts?.length) {
          const metrics = await this.evaluate();
          runLog.log(metrics);
          for (const callback of callbacks) await callback.onEvaluate?.(state(), metrics);
        }
        const saveDue = (args.saveStrategy === 'steps' && saveSteps > 0 && globalStep % saveSteps === 0) || (args.saveStrategy === 'epoch' && endOfEpoch);
        if (saveDue) {
          const dir = this.saveCheckpoint(globalStep, runLog);
          for (const callback of callbacks) await callback.onSave?.(state(), dir);
        }
      }
    } finally {
      progress.finish();
      await gradProgram.release();
      await updateProgram.release();
    }

    const finished = globalStep >= maxSteps;
    const seconds = (Date.now() - started) / 1000;
    const metrics: Metrics = {
      ...speedMetrics('train', seconds, { samples: stepsThisSession * algorithm.promptsPerStep, steps: stepsThisSession }),
      train_loss: stepsThisSession ? totalLoss / stepsThisSession : NaN,
      epoch: runLog.state.epoch,
    };
    if (finished) {
      this.saveModel(args.outputDir);
      runLog.writeTrainerState();
      saveMetrics(args.outputDir, 'train', metrics);
      if (args.plotLoss) {
        const plotted = plotLoss(args.outputDir, ['loss', ...algorithm.plotted]);
        for (const key of plotted.missing) this.log(`No metric ${key} to plot.`);
      }
      for (const callback of callbacks) await callback.onTrainEnd?.(state());
    }
    return { globalStep, trainingLoss: finished ? metrics.train_loss : lastLoss, metrics };
  }

  /** The algorithm's held-out metrics with the current values (the starting ones before training), `eval_` prefixed. */
  async evaluate(): Promise<Metrics> {
    const prompts = this.options.evalPrompts;
    if (!prompts?.length) throw new TunekitError('evaluate() needs held-out prompts: set val_size or eval_dataset.');
    const values = this.values.size ? this.values : await this.initialValues();
    const started = Date.now();
    const metrics = await this.options.algorithm.evaluate(prompts, values);
    const out: Metrics = Object.fromEntries(Object.entries(metrics).map(([name, value]) => [`eval_${name}`, value]));
    Object.assign(out, speedMetrics('eval', (Date.now() - started) / 1000, { samples: prompts.length }));
    return out;
  }

  /** The trainable tensors' starting values (an evaluation before any training): the objective's graph, never run. */
  private async initialValues(): Promise<Map<string, Float32Array>> {
    const { model, algorithm } = this.options;
    const g = new Graph('initial-values');
    const built = algorithm.objective.build(g, model);
    return new Map([...model.trainableParameters(g), ...(built.parameters ?? [])].map((p) => [p.name, p.initial()]));
  }

  private saveCheckpoint(step: number, runLog: RunLog): string {
    const { args } = this;
    const writer = beginCheckpoint(args.outputDir, step);
    try {
      this.saveModel(writer.dir);
      if (!args.saveOnlyModel) {
        const tensors: Record<string, { dtype: 'float32'; shape: number[]; data: Float32Array }> = {};
        for (const [key, data] of this.optimizerState) tensors[key] = { dtype: 'float32', shape: [...this.stateShapes.get(key)!], data };
        writeSafetensors(writer.pathOf(OPTIMIZER_STATE_FILE), tensors, { format: 'pt' });
        writer.writeJson('scheduler.json', { last_epoch: step });
        writer.writeFile(RL_STATE_FILE, `${JSON.stringify({ optimizer_updates: this.optimizerUpdates, algorithm: this.options.algorithm.state() }, null, 2)}\n`);
      }
      const dir = writer.commit(runLog.state);
      rotateCheckpoints(args.outputDir, args.saveTotalLimit, runLog.state.best_model_checkpoint);
      return dir;
    } catch (error) {
      writer.abort();
      throw error;
    }
  }

  private saveModel(dir: string): void {
    const { options } = this;
    saveTrainedModel(dir, { model: options.model, modelDir: options.modelDir, tuner: options.tuner, values: this.values, tokenizer: options.tokenizer });
    options.algorithm.objective.save?.(dir, this.values);
  }

  private readTrainingState(checkpoint: string, update: UpdateProgram): void {
    const stateFile = path.join(checkpoint, RL_STATE_FILE);
    const optimizerFile = path.join(checkpoint, OPTIMIZER_STATE_FILE);
    if (!fs.existsSync(stateFile) || !fs.existsSync(optimizerFile)) {
      throw new TunekitError(`${checkpoint} has no ${RL_STATE_FILE} or ${OPTIMIZER_STATE_FILE} (saved with save_only_model, or not by an RL stage): it cannot resume training exactly. Start a new run from its weights instead.`);
    }
    const saved = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { optimizer_updates: number; algorithm: Record<string, unknown> };
    this.optimizerUpdates = saved.optimizer_updates;
    this.options.algorithm.restore(saved.algorithm);
    const tensors = SafetensorsWeights.fromFiles([optimizerFile]);
    this.optimizerState = new Map([...update.initialState().keys()].map((key) => {
      if (!tensors.has(key)) throw new TunekitError(`${optimizerFile} lacks the optimizer state '${key}': it was not written by this kind of run.`);
      return [key, tensors.read(key)];
    }));
  }
}
