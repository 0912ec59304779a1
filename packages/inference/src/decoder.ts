import * as fs from 'fs';
import * as ort from 'onnxruntime-node';
import { Graph, compileToFile, ortSessionOptions, type SessionOptions } from '@tunekit/graph';
import { TunekitError } from '@tunekit/kernel';
import { cachedCausalLMInputs, type CausalLM, type ModelConfig } from '@tunekit/models';

/**
 * `single`: one graph for the prompt and the steps (past length 0 on the prompt pass), as transformers.js runs an
 * export. `split`: a prompt graph without past inputs plus a step graph with sequence_length fixed to 1.
 */
export type GraphLayout = 'single' | 'split';

/**
 * How the growing cache leaves onnxruntime. `preallocated`: each step's present key/values are written straight into
 * one of two reused buffers (the other holds the past), so nothing is allocated or copied on the JS side.
 * `fetched`: onnxruntime allocates the outputs and they are copied into new JS buffers every step.
 */
export type KvOutputs = 'preallocated' | 'fetched';

export interface DecoderOptions {
  readonly graphs?: GraphLayout;
  readonly kvOutputs?: KvOutputs;
  /** onnxruntime threads; default 1 (as @tunekit/graph's Session). */
  readonly intraOpNumThreads?: number;
  /** `InferenceBackend.sessionOptions()` of the selected backend. */
  readonly backend?: Readonly<Record<string, unknown>>;
  readonly graphOptimizationLevel?: SessionOptions['graphOptimizationLevel'];
}

/**
 * The decoder graph with transformers.js names: inputs `input_ids`, `attention_mask` [batch_size,
 * total_sequence_length], `position_ids`, `past_key_values.{i}.key/.value` (unless `past` is false); outputs
 * `logits` (the last position only: [batch_size, 1, vocab]), `present.{i}.key/.value` and `next_token` (the argmax,
 * [batch_size, 1] int64) so greedy steps need not copy the logits out.
 */
export function buildDecoderGraph(model: CausalLM, options: { past?: boolean; sequenceLength?: string | number } = {}): Graph {
  const past = options.past ?? true;
  const g = new Graph(past ? 'decoder' : 'decoder-prompt');
  const out = model.forwardWithCache(g, cachedCausalLMInputs(g, model.config, { past, sequenceLength: options.sequenceLength }), { lastPositionOnly: true });
  g.output(out.logits, 'logits');
  out.presentKeyValues.forEach((kv, i) => {
    g.output(kv.key, `present.${i}.key`);
    g.output(kv.value, `present.${i}.value`);
  });
  g.output(g.ArgMax(out.logits, -1, false), 'next_token');
  return g;
}

/**
 * The key/value cache of a batch: per layer [rows, kv_heads, length, head_dim]. Rows can be dropped or repeated
 * between steps (finished sequences, beam reordering) with one contiguous copy per row and layer.
 */
export class KvCache {
  /** Tokens cached per row (left padding included). */
  length = 0;
  private capacity: number;
  /** preallocated: two buffers per layer and key/value; `current` holds the cache. */
  private arenas: Float32Array[][] = [[], []];
  private current = 0;
  /** fetched: the last outputs of onnxruntime. */
  private fetched: Float32Array[] = [];

  constructor(
    readonly layers: number,
    readonly kvHeads: number,
    readonly headDim: number,
    public rows: number,
    /** Upper bound on `length`, used to size growth; buffers start small and double. */
    readonly maxLength: number,
    readonly mode: KvOutputs,
  ) {
    this.capacity = Math.min(maxLength, 256);
    if (mode === 'preallocated') this.allocate(this.capacity, false);
    else this.fetched = Array.from({ length: 2 * layers }, () => new Float32Array(0));
  }

  private get rowSize(): number {
    return this.kvHeads * this.length * this.headDim;
  }

  private allocate(capacity: number, keep: boolean): void {
    const size = this.rows * this.kvHeads * capacity * this.headDim;
    const used = this.rows * this.rowSize;
    const next = this.arenas.map((arena, a) =>
      Array.from({ length: 2 * this.layers }, (_, j) => {
        const buf = new Float32Array(size);
        if (keep && a === this.current) buf.set(arena[j].subarray(0, used));
        return buf;
      }),
    );
    this.arenas = next;
    this.capacity = capacity;
  }

  /** Past inputs `past_key_values.{i}.key/.value` over the cached tokens. */
  pastFeeds(): Record<string, ort.Tensor> {
    const dims = [this.rows, this.kvHeads, this.length, this.headDim];
    const n = this.rows * this.rowSize;
    const feeds: Record<string, ort.Tensor> = {};
    for (let j = 0; j < 2 * this.layers; j++) {
      const data = this.mode === 'preallocated' ? this.arenas[this.current][j].subarray(0, n) : this.fetched[j];
      feeds[cacheName('past_key_values', j)] = new ort.Tensor('float32', data, dims);
    }
    return feeds;
  }

  /** Fetches of the present outputs for a pass over `seq` new tokens: buffers to write into, or null (allocate). */
  presentFetches(seq: number): Record<string, ort.Tensor | null> {
    const total = this.length + seq;
    if (this.mode === 'preallocated' && total > this.capacity) {
      if (total > this.maxLength) throw new TunekitError(`key/value cache: ${total} tokens exceed the planned ${this.maxLength}`);
      this.allocate(Math.min(this.maxLength, Math.max(total, 2 * this.capacity)), true);
    }
    const dims = [this.rows, this.kvHeads, total, this.headDim];
    const n = this.rows * this.kvHeads * total * this.headDim;
    const fetches: Record<string, ort.Tensor | null> = {};
    for (let j = 0; j < 2 * this.layers; j++) {
      fetches[cacheName('present', j)] = this.mode === 'preallocated' ? new ort.Tensor('float32', this.arenas[1 - this.current][j].subarray(0, n), dims) : null;
    }
    return fetches;
  }

  /** Takes the present outputs of a pass over `seq` tokens as the cache. */
  accept(outputs: Record<string, ort.Tensor>, seq: number): void {
    if (this.mode === 'preallocated') this.current = 1 - this.current;
    else for (let j = 0; j < 2 * this.layers; j++) this.fetched[j] = outputs[cacheName('present', j)].data as Float32Array;
    this.length += seq;
  }

  /** Keeps, in this order, the rows `rows` (indices into the current rows; repeats allowed). */
  selectRows(rows: readonly number[]): void {
    if (rows.length === this.rows && rows.every((r, i) => r === i)) return;
    const rowSize = this.rowSize;
    if (this.mode === 'preallocated') {
      if (rows.length > this.rows) {
        // more rows than the buffers were sized for (beam expansion of the prompt pass): grow them first
        const old = this.arenas[this.current];
        this.rows = rows.length;
        this.arenas = [[], []];
        this.allocate(this.capacity, false);
        this.gather(old, this.arenas[1 - this.current], rows, rowSize);
      } else {
        this.gather(this.arenas[this.current], this.arenas[1 - this.current], rows, rowSize);
        this.rows = rows.length;
      }
      this.current = 1 - this.current;
    } else {
      const next = this.fetched.map(() => new Float32Array(rows.length * rowSize));
      this.gather(this.fetched, next, rows, rowSize);
      this.fetched = next;
      this.rows = rows.length;
    }
  }

  private gather(from: Float32Array[], to: Float32Array[], rows: readonly number[], rowSize: number): void {
    for (let j = 0; j < from.length; j++) {
      rows.forEach((r, i) => to[j].set(from[j].subarray(r * rowSize, (r + 1) * rowSize), i * rowSize));
    }
  }
}

function cacheName(prefix: 'past_key_values' | 'present', j: number): string {
  return `${prefix}.${j >> 1}.${j & 1 ? 'value' : 'key'}`;
}

/** One pass of the decoder: token ids, mask and positions for `rows` rows of `seq` new tokens. */
export interface DecoderPass {
  readonly inputIds: BigInt64Array;
  /** [rows, cache length + seq]. */
  readonly attentionMask: BigInt64Array;
  readonly positionIds: BigInt64Array;
  readonly seq: number;
}

/** What a pass returns: the last position's logits [rows, vocab] or only their argmax. */
export type PassOutput = { readonly logits: Float32Array } | { readonly nextTokens: number[] };

/** The decoder session(s) of a model: runs passes against a KvCache. */
export class Decoder {
  private logitsBuffer = new Float32Array(0);

  private constructor(
    readonly config: ModelConfig,
    /** The model's trainable tensors, graph inputs that every pass is fed (`run`'s `weights`); none for inference. */
    readonly parameters: readonly { readonly name: string; readonly shape: readonly number[] }[],
    private readonly promptSession: ort.InferenceSession,
    private readonly stepSession: ort.InferenceSession,
    readonly options: Required<Pick<DecoderOptions, 'graphs' | 'kvOutputs'>>,
    private readonly tempDirs: string[],
  ) {}

  static async create(model: CausalLM, options: DecoderOptions = {}): Promise<Decoder> {
    const graphs = options.graphs ?? 'single';
    const kvOutputs = options.kvOutputs ?? 'preallocated';
    const sessionOptions: SessionOptions = {
      intraOpNumThreads: options.intraOpNumThreads,
      backend: options.backend,
      graphOptimizationLevel: options.graphOptimizationLevel,
    };
    const tempDirs: string[] = [];
    const open = async (graph: Graph): Promise<ort.InferenceSession> => {
      const compiled = compileToFile(graph, sessionOptions);
      if (compiled.tempDir) tempDirs.push(compiled.tempDir);
      return ort.InferenceSession.create(compiled.modelPath, ortSessionOptions(sessionOptions));
    };
    try {
      const stepGraph = buildDecoderGraph(model, { sequenceLength: graphs === 'split' ? 1 : undefined });
      const parameters = model.trainableParameters(stepGraph).map((p) => ({ name: p.name, shape: [...p.shape] }));
      const step = await open(stepGraph);
      const prompt = graphs === 'split' ? await open(buildDecoderGraph(model, { past: false })) : step;
      return new Decoder(model.config, parameters, prompt, step, { graphs, kvOutputs }, tempDirs);
    } catch (e) {
      for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
      throw new TunekitError(`${model.source}: could not create the decoder session: ${(e as Error).message}`);
    }
  }

  newCache(rows: number, maxLength: number): KvCache {
    const c = this.config;
    return new KvCache(c.numLayers, c.numKvHeads, c.headDim, rows, maxLength, this.options.kvOutputs);
  }

  /**
   * Runs one pass over the cache (a prompt pass when it is empty) and appends the new keys/values to it. `weights`
   * feeds the trainable tensors (`parameters`) of a model being trained (RL rollouts).
   */
  async run(cache: KvCache, pass: DecoderPass, want: 'logits' | 'argmax', weights: Record<string, ort.Tensor> = {}): Promise<PassOutput> {
    const rows = cache.rows;
    const total = cache.length + pass.seq;
    const usePrompt = cache.length === 0 && this.promptSession !== this.stepSession;
    if (!usePrompt && this.stepSession !== this.promptSession && pass.seq !== 1) {
      throw new TunekitError('the split step graph takes one token per row; run longer inputs on an empty cache');
    }
    const session = usePrompt ? this.promptSession : this.stepSession;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', pass.inputIds, [rows, pass.seq]),
      attention_mask: new ort.Tensor('int64', pass.attentionMask, [rows, total]),
      position_ids: new ort.Tensor('int64', pass.positionIds, [rows, pass.seq]),
      ...(usePrompt ? {} : cache.pastFeeds()),
      ...weights,
    };
    const fetches: Record<string, ort.Tensor | null> = cache.presentFetches(pass.seq);
    const vocab = this.config.vocabSize;
    let logits: Float32Array | undefined;
    if (want === 'argmax') fetches.next_token = null;
    else if (cache.mode === 'preallocated') {
      if (this.logitsBuffer.length < rows * vocab) this.logitsBuffer = new Float32Array(rows * vocab);
      logits = this.logitsBuffer.subarray(0, rows * vocab);
      fetches.logits = new ort.Tensor('float32', logits, [rows, 1, vocab]);
    } else fetches.logits = null;
    const out = (await session.run(feeds, fetches)) as Record<string, ort.Tensor>;
    cache.accept(out, pass.seq);
    if (want === 'argmax') return { nextTokens: Array.from(out.next_token.data as BigInt64Array, Number) };
    return { logits: logits ?? (out.logits.data as Float32Array) };
  }

  async release(): Promise<void> {
    await this.stepSession.release();
    if (this.promptSession !== this.stepSession) await this.promptSession.release();
    for (const dir of this.tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Left-padded prompt pass (to `width`, default the longest prompt): positions count real tokens (padding at 1, as transformers' generate). */
export function promptPass(prompts: readonly (readonly number[])[], padId: number, width = Math.max(...prompts.map((p) => p.length))): { pass: DecoderPass; pads: number[]; width: number } {
  const rows = prompts.length;
  const inputIds = new BigInt64Array(rows * width);
  const attentionMask = new BigInt64Array(rows * width);
  const positionIds = new BigInt64Array(rows * width);
  const pads = prompts.map((p, r) => {
    const pad = width - p.length;
    for (let t = 0; t < width; t++) {
      const i = r * width + t;
      const real = t >= pad;
      inputIds[i] = BigInt(real ? p[t - pad] : padId);
      attentionMask[i] = real ? 1n : 0n;
      positionIds[i] = BigInt(real ? t - pad : 1);
    }
    return pad;
  });
  return { pass: { inputIds, attentionMask, positionIds, seq: width }, pads, width };
}

/** One new token per row: the last generated token at position prompt length + generated - 1. */
export function stepPass(cache: KvCache, rows: readonly { prompt: readonly number[]; tokens: readonly number[]; pads: number }[]): DecoderPass {
  const total = cache.length + 1;
  const inputIds = new BigInt64Array(rows.length);
  const positionIds = new BigInt64Array(rows.length);
  const attentionMask = new BigInt64Array(rows.length * total);
  rows.forEach((q, r) => {
    inputIds[r] = BigInt(q.tokens[q.tokens.length - 1]);
    positionIds[r] = BigInt(q.prompt.length + q.tokens.length - 1);
    attentionMask.fill(1n, r * total + q.pads, (r + 1) * total);
  });
  return { inputIds, attentionMask, positionIds, seq: 1 };
}
