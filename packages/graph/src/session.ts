import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { DType, TypedArray, arrayClassOf, matchesDType } from './dtype';
import { FeedError, GraphError } from './errors';
import { Graph } from './graph';
import { EncodeOptions, saveModel } from './onnx-model';
import { Dim, formatShape, isUnknownDim, numelOf } from './shape';

/** Host-side tensor data: what you feed and what you fetch. */
export interface HostTensor {
  dtype: DType;
  dims: number[];
  data: TypedArray;
}

/** A feed: a HostTensor, a typed array (for inputs whose shape is fully static), or a number (scalar inputs). */
export type Feed = HostTensor | TypedArray | number;

export interface SessionOptions extends Omit<EncodeOptions, 'modelDir'> {
  /** Where to write the .onnx file; default: a fresh temporary directory (removed on release). */
  modelPath?: string;
  /** Default 1. */
  intraOpNumThreads?: number;
  /** Default 'all'. */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'layout' | 'all';
  /** Keeps onnxruntime from merging recomputed (checkpointed) forward nodes back into the forward pass. */
  disableCse?: boolean;
  /**
   * Keeps frozen weights as loaded: no prepacked copies for the GEMM kernels and no constant-folded ones (a Transpose
   * of a weight would otherwise become a second, transposed initializer). Training sessions set it: on the
   * SmolLM-135M shape it cut a LoRA run's peak memory by 12% (2.46 to 2.15 GB) at the same speed.
   */
  weightsInPlace?: boolean;
  /** onnxruntime log level (0 verbose .. 4 fatal); default 3. */
  logSeverityLevel?: 0 | 1 | 2 | 3 | 4;
  /**
   * Options of the selected inference backend (`InferenceBackend.sessionOptions()` of the kernel): its execution
   * providers and thread settings override the defaults here. The backend checks that it can run before it returns
   * them, so a CUDA session is never silently created on the CPU.
   */
  backend?: Readonly<Record<string, unknown>>;
}

/** The declared signature of a compiled graph: names, dtypes, shapes (symbolic dims included). */
export interface IoSpec {
  name: string;
  dtype: DType;
  shape: Dim[];
}

/** The onnxruntime session options the notes recommend, from our options. */
export function ortSessionOptions(options: SessionOptions): ort.InferenceSession.SessionOptions {
  const o: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    // With the memory pattern on, resident memory doubled after the second run of a training graph.
    enableMemPattern: false,
    intraOpNumThreads: options.intraOpNumThreads ?? 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: options.graphOptimizationLevel ?? 'all',
    logSeverityLevel: options.logSeverityLevel ?? 3,
  };
  if (options.backend) Object.assign(o, options.backend);
  // onnxruntime throws on `extra: undefined`, so the key is only set when needed.
  const disabled = [...(options.disableCse ? ['CommonSubexpressionElimination'] : []), ...(options.weightsInPlace ? ['ConstantFolding'] : [])];
  const extra: Record<string, Record<string, string>> = {};
  if (disabled.length) extra.optimization = { disable_specified_optimizers: disabled.join(',') };
  if (options.weightsInPlace) extra.session = { disable_prepacking: '1' };
  if (Object.keys(extra).length) o.extra = extra;
  return o;
}

/** Writes the graph to a model file (a temp dir unless modelPath is given) and returns its path and signature. */
export function compileToFile(graph: Graph, options: SessionOptions = {}): { modelPath: string; tempDir?: string; inputs: IoSpec[]; outputs: IoSpec[] } {
  let tempDir: string | undefined;
  let modelPath = options.modelPath;
  if (!modelPath) {
    tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-graph-'));
    modelPath = path.join(tempDir, 'model.onnx');
  }
  const file = saveModel(graph, modelPath, options);
  return {
    modelPath: file,
    tempDir,
    inputs: graph.inputs.map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape] })),
    outputs: graph.outputs.map((o) => ({ name: o.name, dtype: o.tensor.dtype, shape: [...o.tensor.shape] })),
  };
}

/**
 * Checks feeds against the declared inputs (names, dtypes, shapes, consistent symbolic dims) and returns them as
 * HostTensors. Every error names the input and the expected shape.
 */
export function checkFeeds(inputs: readonly IoSpec[], feeds: Record<string, Feed>): Record<string, HostTensor> {
  const out: Record<string, HostTensor> = {};
  const bound = new Map<string, { value: number; from: string }>();
  for (const name of Object.keys(feeds)) {
    if (!inputs.some((i) => i.name === name)) {
      throw new FeedError(`unknown input '${name}'; the graph's inputs are: ${inputs.map((i) => i.name).join(', ')}`);
    }
  }
  for (const spec of inputs) {
    const feed = feeds[spec.name];
    const expect = `${spec.dtype} ${formatShape(spec.shape)}`;
    if (feed === undefined) throw new FeedError(`missing input '${spec.name}' (${expect})`);
    let t: HostTensor;
    if (typeof feed === 'number') {
      if (spec.shape.length !== 0) throw new FeedError(`input '${spec.name}': a number was given but it expects ${expect}`);
      const data = new (arrayClassOf(spec.dtype))(1);
      data[0] = (spec.dtype === 'int64' ? BigInt(feed) : feed) as never;
      t = { dtype: spec.dtype, dims: [], data };
    } else if (ArrayBuffer.isView(feed)) {
      const dims = spec.shape.map((d) => (typeof d === 'number' ? d : NaN));
      if (dims.some(Number.isNaN)) throw new FeedError(`input '${spec.name}' has symbolic dims ${formatShape(spec.shape)}: feed { dtype, dims, data }`);
      t = { dtype: spec.dtype, dims, data: feed };
    } else {
      t = feed;
    }
    if (t.dtype !== spec.dtype || !matchesDType(t.data, spec.dtype)) {
      throw new FeedError(`input '${spec.name}': expected ${expect}, got ${t.dtype} data in a ${t.data.constructor.name}`);
    }
    if (t.dims.length !== spec.shape.length) {
      throw new FeedError(`input '${spec.name}': expected ${expect}, got dims [${t.dims.join(', ')}]`);
    }
    spec.shape.forEach((d, i) => {
      const got = t.dims[i];
      if (typeof d === 'number') {
        if (got !== d) throw new FeedError(`input '${spec.name}': expected ${expect}, got dims [${t.dims.join(', ')}] (axis ${i})`);
      } else if (!isUnknownDim(d) && !d.includes('*')) {
        const prev = bound.get(d);
        if (prev && prev.value !== got) {
          throw new FeedError(`input '${spec.name}': dim '${d}' is ${got} here but ${prev.value} in input '${prev.from}'`);
        }
        bound.set(d, { value: got, from: spec.name });
      }
    });
    if (numelOf(t.dims) !== t.data.length) {
      throw new FeedError(`input '${spec.name}': dims [${t.dims.join(', ')}] need ${numelOf(t.dims)} values, got ${t.data.length}`);
    }
    out[spec.name] = t;
  }
  return out;
}

export function toOrtTensor(t: HostTensor): ort.Tensor {
  if (t.dtype === 'bfloat16') throw new FeedError('bfloat16 feeds are not supported by onnxruntime-node; feed float32 and Cast in the graph');
  return new ort.Tensor(t.dtype as 'float32', t.data as Float32Array, t.dims);
}

export function fromOrtTensor(t: ort.Tensor): HostTensor {
  return { dtype: t.type as DType, dims: [...t.dims], data: t.data as TypedArray };
}

/** A compiled graph on onnxruntime (CPU), created from a model file. Feeds are checked before every run. */
export class Session {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly modelPath: string,
    readonly inputs: readonly IoSpec[],
    readonly outputs: readonly IoSpec[],
    private readonly tempDir: string | undefined,
  ) {}

  /** Serializes `graph` to a file and opens it (loading from a path lets onnxruntime memory-map external data). */
  static async create(graph: Graph, options: SessionOptions = {}): Promise<Session> {
    const c = compileToFile(graph, options);
    try {
      const s = await ort.InferenceSession.create(c.modelPath, ortSessionOptions(options));
      return new Session(s, c.modelPath, c.inputs, c.outputs, c.tempDir);
    } catch (e) {
      if (c.tempDir) fs.rmSync(c.tempDir, { recursive: true, force: true });
      throw new GraphError(`onnxruntime rejected the graph '${graph.name}': ${(e as Error).message}`);
    }
  }

  /** Runs the graph; `fetches` defaults to every output. */
  async run(feeds: Record<string, Feed>, fetches?: readonly string[]): Promise<Record<string, HostTensor>> {
    const checked = checkFeeds(this.inputs, feeds);
    const names = fetches ?? this.outputs.map((o) => o.name);
    for (const n of names) {
      if (!this.outputs.some((o) => o.name === n)) throw new FeedError(`unknown output '${n}'; outputs are: ${this.outputs.map((o) => o.name).join(', ')}`);
    }
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(checked)) ortFeeds[k] = toOrtTensor(v);
    const res = await this.session.run(ortFeeds, [...names]);
    const out: Record<string, HostTensor> = {};
    for (const n of names) out[n] = fromOrtTensor(res[n]);
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
    if (this.tempDir) fs.rmSync(this.tempDir, { recursive: true, force: true });
  }
}
