import type { Batch } from '@tunekit/data';
import { applyOptimizer, clipCoefficient, grad, Graph, Session, stateShapeOf, type GraphOptimizer, type HostTensor, type SessionOptions, type Tensor } from '@tunekit/graph';
import { TunekitError } from '@tunekit/kernel';
import { createRng, shiftLabels, type CausalLM, type TrainableParameter } from '@tunekit/models';
import type { ObjectiveGraph, TrainingObjective } from './objective';

/** A trainable tensor as the loop keeps it: name and shape; its values live in the trainer's host state. */
export interface ParameterSlot {
  readonly name: string;
  readonly shape: readonly number[];
}

type Feeds = Record<string, HostTensor>;

/** Every trainable tensor of a built graph: the model's (base weights or adapters), then the objective's own. */
function trainableOf(g: Graph, model: CausalLM, built: ObjectiveGraph): TrainableParameter[] {
  const own = built.parameters ?? [];
  const modelParameters = model.trainableParameters(g);
  const clash = own.find((p) => modelParameters.some((m) => m.name === p.name));
  if (clash) throw new TunekitError(`The objective's parameter '${clash.name}' has the name of a model parameter.`, 1);
  return [...modelParameters, ...own];
}

export interface GradResult {
  /** The micro-batch's loss sum (not scaled). */
  readonly lossSum: number;
  readonly metrics: Record<string, number>;
  readonly grads: Map<string, Float32Array>;
}

/**
 * Forward and backward of one micro-batch: the gradient of lossSum * loss_scale w.r.t. every trainable tensor, where
 * the loop feeds loss_scale = 1 / (the weight of the whole accumulated step), so that the accumulated gradient is the
 * gradient of the step's mean loss (over every counted token, for language modelling).
 */
export class GradProgram {
  private constructor(
    private readonly session: Session,
    private readonly objective: TrainingObjective,
    readonly parameters: readonly ParameterSlot[],
    private readonly metricNames: readonly string[],
    private readonly initialValues: Map<string, () => Float32Array>,
    /** The names of the objective's own parameters (a value head), a subset of `parameters`. */
    readonly objectiveParameters: readonly string[],
    private readonly neftune?: { alpha: number; hidden: number },
  ) {}

  static async create(model: CausalLM, objective: TrainingObjective, options: { session: SessionOptions; neftuneAlpha?: number }): Promise<GradProgram> {
    const g = new Graph('train-grad');
    const scale = g.input('loss_scale', 'float32', []);
    // Training mode: dropout (LoRA's lora_dropout) draws its masks from this seed, fed per micro-batch.
    const dropoutSeed = g.input('dropout_seed', 'int64', []);
    const neftune = (options.neftuneAlpha ?? 0) > 0;
    const embeddingNoise = neftune ? g.input('embedding_noise', 'float32', ['batch', 'seq', model.config.hiddenSize]) : undefined;
    const built = objective.build(g, model, { dropoutSeed, embeddingNoise });
    const { lossSum, metrics } = built;
    g.output(lossSum, 'loss_sum');
    for (const [name, tensor] of Object.entries(metrics)) g.output(tensor, `metric.${name}`);
    const trainable = trainableOf(g, model, built);
    const grads = grad(g.Mul(lossSum, scale), trainable.map((p) => p.tensor));
    trainable.forEach((p, i) => g.output(grads[i], `grad.${p.name}`));
    const session = await Session.create(g, { weightsInPlace: true, ...options.session });
    return new GradProgram(
      session,
      objective,
      trainable.map((p) => ({ name: p.name, shape: [...p.shape] })),
      Object.keys(metrics),
      new Map(trainable.map((p) => [p.name, () => p.initial()])),
      (built.parameters ?? []).map((p) => p.name),
      neftune ? { alpha: options.neftuneAlpha!, hidden: model.config.hiddenSize } : undefined,
    );
  }

  /** The starting value of a trainable tensor (from the base weights or the adapter). */
  initial(name: string): Float32Array {
    return this.initialValues.get(name)!();
  }

  /** `dropoutSeed` derives from (seed, step, micro-batch), so a resumed run draws the same dropout masks. */
  async run(batch: Batch, lossScale: number, values: ReadonlyMap<string, Float32Array>, dropoutSeed = 0n): Promise<GradResult> {
    const feeds: Feeds = {
      ...(await this.objective.feeds(batch)),
      loss_scale: { dtype: 'float32', dims: [], data: Float32Array.of(lossScale) },
      dropout_seed: { dtype: 'int64', dims: [], data: BigInt64Array.of(dropoutSeed) },
    };
    if (this.neftune) feeds.embedding_noise = neftuneNoise(batch, this.neftune, dropoutSeed);
    for (const p of this.parameters) feeds[p.name] = { dtype: 'float32', dims: [...p.shape], data: values.get(p.name)! };
    const out = await this.session.run(feeds);
    const grads = new Map<string, Float32Array>();
    for (const p of this.parameters) grads.set(p.name, out[`grad.${p.name}`].data as Float32Array);
    const metrics = Object.fromEntries(this.metricNames.map((name) => [name, Number(out[`metric.${name}`].data[0])]));
    return { lossSum: Number(out.loss_sum.data[0]), metrics, grads };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/**
 * NEFTune (neftune_noise_alpha) as the Hugging Face Trainer applies it: uniform noise in [-m, m] on the input
 * embeddings while training, m = alpha / sqrt(seq_len * hidden). Drawn from the micro-batch's seed, so a resumed run
 * draws the same noise.
 */
export function neftuneNoise(batch: Batch, settings: { alpha: number; hidden: number }, seed: bigint): HostTensor {
  const [rows, length] = (batch.input_ids as { dims: number[] }).dims;
  const magnitude = settings.alpha / Math.sqrt(length * settings.hidden);
  const random = createRng(Number(BigInt.asUintN(32, seed ^ 0x6e6566n)));
  const data = new Float32Array(rows * length * settings.hidden);
  for (let i = 0; i < data.length; i++) data[i] = (2 * random.uniform() - 1) * magnitude;
  return { dtype: 'float32', dims: [rows, length, settings.hidden], data };
}

export interface ParameterGroupSpec {
  readonly names: readonly string[];
  readonly weightDecay: number;
  /** Factor on the scheduled learning rate (LoRA+). */
  readonly lrScale: number;
}

export interface UpdateResult {
  readonly values: Map<string, Float32Array>;
  readonly state: Map<string, Float32Array>;
  /** Global gradient norm before clipping (when max_grad_norm > 0). */
  readonly gradNorm?: number;
}

/** Parameters per update session: each chunk's new values and state leave the runtime before the next runs. */
export const UPDATE_CHUNK_FLOATS = 32 * 2 ** 20;

/** One update session: a run of parameters (in order) with their groups' learning-rate inputs. */
interface UpdateChunk {
  readonly session: Session;
  readonly parameters: readonly ParameterSlot[];
  /** For each `lr.<i>` input of the chunk, the index of its group in `UpdateProgram.groups`. */
  readonly groupIndices: readonly number[];
  readonly stateKeys: readonly string[];
}

/** Parameters in order, cut into runs of at most `limit` values (a larger tensor gets a run of its own). */
function chunksOf(parameters: readonly ParameterSlot[], limit: number): ParameterSlot[][] {
  const chunks: ParameterSlot[][] = [];
  let current: ParameterSlot[] = [];
  let size = 0;
  for (const p of parameters) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    if (current.length && size + n > limit) {
      chunks.push(current);
      current = [];
      size = 0;
    }
    current.push(p);
    size += n;
  }
  if (current.length) chunks.push(current);
  return chunks;
}

/**
 * The optimizer step: optional global-norm clipping, then the optimizer's update per parameter group. Parameters are
 * updated in chunks of at most UPDATE_CHUNK_FLOATS values, one session each, so that only one chunk's new values and
 * state are in the runtime at a time (full fine-tuning of SmolLM-135M: 4 chunks). With several chunks and
 * max_grad_norm, a first session computes torch's clip coefficient over every gradient (the same graph as in one
 * session) and each chunk scales its gradients by it.
 */
export class UpdateProgram {
  private constructor(
    private readonly chunks: readonly UpdateChunk[],
    private readonly norm: Session | undefined,
    /** `<parameter>.<state>` → shape, for every state tensor the optimizer keeps. */
    readonly stateShapes: ReadonlyMap<string, readonly number[]>,
    readonly groups: readonly ParameterGroupSpec[],
    private readonly clips: boolean,
  ) {}

  static async create(
    parameters: readonly ParameterSlot[],
    optimizer: GraphOptimizer,
    groups: readonly ParameterGroupSpec[],
    options: { maxGradNorm: number; session: SessionOptions; chunkFloats?: number },
  ): Promise<UpdateProgram> {
    const clips = options.maxGradNorm > 0;
    const stateShapes = new Map<string, readonly number[]>();
    for (const p of parameters) {
      for (const key of optimizer.stateNames) {
        const shape = stateShapeOf(optimizer, key, p);
        if (shape) stateShapes.set(`${p.name}.${key}`, shape);
      }
    }
    const parts = chunksOf(parameters, options.chunkFloats ?? UPDATE_CHUNK_FLOATS);
    const chunked = parts.length > 1;
    const groupOf = new Map<string, number>();
    groups.forEach((group, i) => group.names.forEach((name) => groupOf.set(name, i)));
    const chunks: UpdateChunk[] = [];
    for (const part of parts) {
      const g = new Graph('train-update');
      const tensors = new Map<string, Tensor>();
      const grads = new Map<Tensor, Tensor>();
      const scale = chunked && clips ? g.input('clip_scale', 'float32', []) : undefined;
      for (const p of part) {
        const t = g.input(p.name, 'float32', [...p.shape]);
        tensors.set(p.name, t);
        const gradient = g.input(`grad.${p.name}`, 'float32', [...p.shape]);
        grads.set(t, scale ? g.Mul(gradient, scale) : gradient);
      }
      const groupIndices = [...new Set(part.map((p) => groupOf.get(p.name)!))].sort((a, b) => a - b);
      applyOptimizer(g, {
        optimizer,
        groups: groupIndices.map((i) => ({ params: groups[i].names.filter((name) => tensors.has(name)).map((name) => tensors.get(name)!), weightDecay: groups[i].weightDecay })),
        grads,
        maxGradNorm: clips && !chunked ? options.maxGradNorm : undefined,
      });
      const stateKeys = part.flatMap((p) => optimizer.stateNames.map((key) => `${p.name}.${key}`).filter((key) => stateShapes.has(key)));
      chunks.push({ session: await Session.create(g, options.session), parameters: part, groupIndices, stateKeys });
    }
    let norm: Session | undefined;
    if (chunked && clips) {
      const g = new Graph('train-grad-norm');
      const { scale, totalNorm } = clipCoefficient(parameters.map((p) => g.input(`grad.${p.name}`, 'float32', [...p.shape])), options.maxGradNorm);
      g.output(totalNorm, 'grad_norm');
      g.output(scale, 'clip_scale');
      norm = await Session.create(g, options.session);
    }
    return new UpdateProgram(chunks, norm, stateShapes, groups, clips);
  }

  /** Zero optimizer state, as torch starts it. */
  initialState(): Map<string, Float32Array> {
    const state = new Map<string, Float32Array>();
    for (const [key, shape] of this.stateShapes) state.set(key, new Float32Array(shape.reduce((a, b) => a * b, 1)));
    return state;
  }

  /** The step on copies: new maps of values and state, the inputs untouched. */
  async run(
    values: ReadonlyMap<string, Float32Array>,
    grads: ReadonlyMap<string, Float32Array>,
    state: ReadonlyMap<string, Float32Array>,
    baseLr: number,
    step: number,
  ): Promise<UpdateResult> {
    const nextValues = new Map(values);
    const nextState = new Map(state);
    const gradNorm = await this.step(nextValues, new Map(grads), nextState, baseLr, step);
    return { values: nextValues, state: nextState, gradNorm };
  }

  /**
   * The step in place: as each chunk finishes, its parameters' values and state are replaced in `values` and `state`
   * and their gradients dropped from `grads`, so the previous arrays can be freed before the next chunk runs. Returns
   * the global gradient norm before clipping (when max_grad_norm > 0).
   */
  async step(values: Map<string, Float32Array>, grads: Map<string, Float32Array>, state: Map<string, Float32Array>, baseLr: number, step: number): Promise<number | undefined> {
    const tensor = (shape: readonly number[], data: Float32Array): HostTensor => ({ dtype: 'float32', dims: [...shape], data });
    let gradNorm: number | undefined;
    let scale: HostTensor | undefined;
    if (this.norm) {
      const feeds: Feeds = {};
      for (const chunk of this.chunks) for (const p of chunk.parameters) feeds[`grad.${p.name}`] = tensor(p.shape, grads.get(p.name)!);
      const out = await this.norm.run(feeds);
      gradNorm = Number(out.grad_norm.data[0]);
      scale = out.clip_scale;
    }
    for (const chunk of this.chunks) {
      const feeds: Feeds = { step: { dtype: 'float32', dims: [], data: Float32Array.of(step) } };
      chunk.groupIndices.forEach((group, i) => (feeds[`lr.${i}`] = { dtype: 'float32', dims: [], data: Float32Array.of(baseLr * this.groups[group].lrScale) }));
      if (scale) feeds.clip_scale = scale;
      for (const p of chunk.parameters) {
        feeds[p.name] = tensor(p.shape, values.get(p.name)!);
        feeds[`grad.${p.name}`] = tensor(p.shape, grads.get(p.name)!);
      }
      for (const key of chunk.stateKeys) feeds[key] = tensor(this.stateShapes.get(key)!, state.get(key)!);
      const out = await chunk.session.run(feeds);
      if (this.clips && !this.norm) gradNorm = Number(out.grad_norm.data[0]);
      for (const p of chunk.parameters) {
        values.set(p.name, out[`${p.name}.next`].data as Float32Array);
        grads.delete(p.name);
      }
      for (const key of chunk.stateKeys) state.set(key, out[`${key}.next`].data as Float32Array);
    }
    return gradNorm;
  }

  async release(): Promise<void> {
    await Promise.all([...this.chunks.map((c) => c.session.release()), this.norm?.release()]);
  }
}

export interface EvalResult {
  readonly lossSum: number;
  readonly metrics: Record<string, number>;
  /** Per row: correctly predicted counted tokens, and counted tokens (language modelling, for compute_accuracy). */
  readonly correct?: Float32Array;
  readonly rowCounted?: Float32Array;
  /** The objective's per-example values (`ObjectiveGraph.rows`), by name. */
  readonly rows: Record<string, Float32Array>;
}

/**
 * Forward only: the objective's loss sum and metrics and, for language-modelling objectives, how many counted next
 * tokens the argmax predicts per row.
 */
export class EvalProgram {
  private constructor(
    private readonly session: Session,
    private readonly objective: TrainingObjective,
    private readonly parameters: readonly TrainableParameter[],
    private readonly metricNames: readonly string[],
    private readonly accuracy: boolean,
    private readonly rowNames: readonly string[],
  ) {}

  static async create(model: CausalLM, objective: TrainingObjective, options: { session: SessionOptions; accuracy: boolean }): Promise<EvalProgram> {
    const g = new Graph('eval');
    const built = objective.build(g, model);
    const { lossSum, metrics, tokens } = built;
    g.output(lossSum, 'loss_sum');
    for (const [name, tensor] of Object.entries(metrics)) g.output(tensor, `metric.${name}`);
    for (const [name, tensor] of Object.entries(built.rows ?? {})) g.output(g.Cast(tensor, 'float32'), `row.${name}`);
    const accuracy = options.accuracy && tokens !== undefined;
    if (accuracy) {
      const { logits, labels } = tokens;
      const shifted = shiftLabels(labels);
      const counted = g.Cast(g.Not(g.Equal(shifted, g.constant(-100, shifted.dtype))), 'float32');
      const hits = g.Mul(g.Cast(g.Equal(g.ArgMax(logits, -1, false), shifted), 'float32'), counted);
      g.output(g.ReduceSum(hits, [1], false), 'row_correct');
      g.output(g.ReduceSum(counted, [1], false), 'row_counted');
    }
    const session = await Session.create(g, { weightsInPlace: true, ...options.session });
    return new EvalProgram(session, objective, trainableOf(g, model, built), Object.keys(metrics), accuracy, Object.keys(built.rows ?? {}));
  }

  /** Evaluates with the trained `values`; a tensor not among them (nothing trained yet) has its starting value. */
  async run(batch: Batch, values: ReadonlyMap<string, Float32Array>): Promise<EvalResult> {
    const feeds: Feeds = { ...(await this.objective.feeds(batch)) };
    for (const p of this.parameters) feeds[p.name] = { dtype: 'float32', dims: [...p.shape], data: values.get(p.name) ?? p.initial() };
    const out = await this.session.run(feeds);
    return {
      lossSum: Number(out.loss_sum.data[0]),
      metrics: Object.fromEntries(this.metricNames.map((name) => [name, Number(out[`metric.${name}`].data[0])])),
      correct: this.accuracy ? (out.row_correct.data as Float32Array) : undefined,
      rowCounted: this.accuracy ? (out.row_counted.data as Float32Array) : undefined,
      rows: Object.fromEntries(this.rowNames.map((name) => [name, out[`row.${name}`].data as Float32Array])),
    };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
