import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Batch, UnsupervisedExample } from '@tunekit/data';
import { Graph } from '@tunekit/graph';
import { TunekitError } from '@tunekit/kernel';
import { createRng, dropoutSeed, type Rng } from '@tunekit/models';
import {
  BatchSampler,
  speedMetrics,
  totalOptimizerSteps,
  TrainingRun,
  type Metrics,
  type RunSetup,
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

export interface RolloutLoopOptions extends RunSetup {
  readonly algorithm: RlAlgorithm;
  readonly prompts: readonly UnsupervisedExample[];
  readonly evalPrompts?: readonly UnsupervisedExample[];
}

/** The algorithm's state and the optimizer update count, saved in every checkpoint beside the optimizer state. */
export const RL_STATE_FILE = 'rl_state.json';

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
  /** The trained values after `train()` (the run's, while it runs); empty before. */
  private values: ReadonlyMap<string, Float32Array> = new Map();
  private run?: TrainingRun;
  private optimizerUpdates = 0;

  constructor(private readonly options: RolloutLoopOptions) {
    this.args = options.args;
  }

  private get iterations(): number {
    return this.options.algorithm.iterationsPerBatch ?? 1;
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
    const { sampler, maxSteps, stepsPerEpoch } = this.plan();
    const run = await TrainingRun.start({
      ...options,
      objective: algorithm.objective,
      maxSteps,
      stepsPerEpoch,
      samplesPerStep: algorithm.promptsPerStep,
      progressMetrics: algorithm.progressMetrics,
      // The algorithms' metrics are per step (means already); a window averages each over the steps that had it.
      summarizeWindow: (sums, counts) => Object.fromEntries([...sums].map(([name, sum]) => [name, sum / counts.get(name)!])),
      checkpointFiles: () => ({ [RL_STATE_FILE]: `${JSON.stringify({ optimizer_updates: this.optimizerUpdates, algorithm: algorithm.state() }, null, 2)}\n` }),
      restore: (checkpoint) => this.restore(checkpoint),
      // Several updates per step (ppo_epochs, mini-batches): BAdam picks its block from the update count.
      resumedUpdates: (checkpoint) => this.savedState(checkpoint).optimizer_updates,
    });
    this.run = run;
    let epochBatches: { epoch: number; batches: number[][] } | undefined;
    try {
      while (run.running) {
        const globalStep = run.globalStep;
        const epoch = Math.floor(globalStep / stepsPerEpoch);
        const inEpoch = globalStep % stepsPerEpoch;
        if (!epochBatches || epochBatches.epoch !== epoch) epochBatches = { epoch, batches: sampler.epoch(epoch) };
        const prompts = epochBatches.batches[Math.floor(inEpoch / this.iterations)].map((i) => options.prompts[i]);
        const step = globalStep + 1;
        let updatesThisStep = 0;
        let gradNorm: number | undefined;
        const context: RlStepContext = {
          step,
          iteration: inEpoch % this.iterations,
          values: () => run.values,
          rng: createRng(Number(BigInt.asUintN(32, dropoutSeed(args.seed, step, 0)))),
          update: async (batches) => {
            if (!batches.length) throw new TunekitError('An RL update with no batches.', 1);
            const first = updatesThisStep * batches.length;
            this.optimizerUpdates += 1;
            updatesThisStep += 1;
            const outcome = await run.update(batches, { lossScale: 1 / batches.length, updateNumber: this.optimizerUpdates, seed: (index) => dropoutSeed(args.seed, step, first + index) });
            gradNorm = outcome.gradNorm;
            return { loss: outcome.lossSum / batches.length, metrics: Object.fromEntries([...outcome.metricSums].map(([name, sum]) => [name, sum / batches.length])) };
          },
        };
        const result = await algorithm.step(prompts, context);
        await run.endStep({
          loss: result.loss,
          metrics: Object.entries(result.metrics).filter(([, value]) => Number.isFinite(value)),
          microBatches: 1,
          tokens: result.tokens,
          gradNorm,
          evaluate: options.evalPrompts?.length ? () => this.evaluate() : undefined,
        });
      }
      return await run.finish(['loss', ...algorithm.plotted]);
    } finally {
      this.values = run.values;
      this.run = undefined;
      await run.release();
    }
  }

  /** The algorithm's held-out metrics with the current values (the starting ones before training), `eval_` prefixed. */
  async evaluate(): Promise<Metrics> {
    const prompts = this.options.evalPrompts;
    if (!prompts?.length) throw new TunekitError('evaluate() needs held-out prompts: set val_size or eval_dataset.');
    const current = this.run?.values ?? this.values;
    const values = current.size ? current : await this.initialValues();
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

  /** The update count and the algorithm's state (KL controller, score moments) of a checkpoint. */
  private restore(checkpoint: string): void {
    const saved = this.savedState(checkpoint);
    this.optimizerUpdates = saved.optimizer_updates;
    this.options.algorithm.restore(saved.algorithm);
  }

  private savedState(checkpoint: string): { optimizer_updates: number; algorithm: Record<string, unknown> } {
    const stateFile = path.join(checkpoint, RL_STATE_FILE);
    if (!fs.existsSync(stateFile)) {
      throw new TunekitError(`${checkpoint} has no ${RL_STATE_FILE} (saved with save_only_model, or not by an RL stage): it cannot resume training exactly. Start a new run from its weights instead.`);
    }
    return JSON.parse(fs.readFileSync(stateFile, 'utf8')) as { optimizer_updates: number; algorithm: Record<string, unknown> };
  }
}
