import { Graph, SLICE_TO_END, Tensor, linear, maskedFill, rmsNorm, silu, softmax } from '@tunekit/graph';
import { TunekitError, type ParameterInfo, type TunableModel } from '@tunekit/kernel';
import { LinearSpec, ModelConfig, ParameterSpec, linearSpecs, parameterSpecs, readModelConfig } from './config';
import { applyRope, ropeCosSin } from './rope';
import type { QuantizedWeights } from './quantize';
import { LoadWeightsOptions, MemoryWeights, OverlayWeights, SafetensorsWeights, WeightSource } from './weights';

/** The token inputs of a causal-LM forward pass, all int64 [batch, seq]. */
export interface CausalLMInputs {
  readonly inputIds: Tensor;
  /** 1 = token, 0 = padding (left or right). */
  readonly attentionMask: Tensor;
  /** Positions for RoPE, used as given (left-padded rows: cumsum(mask) - 1 clipped at 0). */
  readonly positionIds: Tensor;
}

/** Declares graph inputs `input_ids`, `attention_mask`, `position_ids` (int64 [batch, seq]). */
export function causalLMInputs(g: Graph, dims: { batch?: string | number; seq?: string | number } = {}): CausalLMInputs {
  const shape = [dims.batch ?? 'batch', dims.seq ?? 'seq'];
  return {
    inputIds: g.input('input_ids', 'int64', shape),
    attentionMask: g.input('attention_mask', 'int64', shape),
    positionIds: g.input('position_ids', 'int64', shape),
  };
}

/** One layer's cached keys and values, each [batch, kv_heads, length, head_dim] (keys after RoPE). */
export interface KeyValue {
  readonly key: Tensor;
  readonly value: Tensor;
}

/** The inputs of a cached forward pass. */
export interface CachedCausalLMInputs extends CausalLMInputs {
  /** [batch, past + seq]: 1 = token, 0 = padding, over the cached tokens and the new ones. */
  readonly attentionMask: Tensor;
  /** One per layer, [batch, kv_heads, past, head_dim]; absent for a prompt pass (past = 0). */
  readonly pastKeyValues?: readonly KeyValue[];
}

/**
 * Declares the inputs of a cached decoder graph with the names and dims transformers.js expects: `input_ids` and
 * `position_ids` [batch_size, sequence_length], `attention_mask` [batch_size, total_sequence_length] and, with
 * `past` (default), `past_key_values.{i}.key` / `.value` [batch_size, kv_heads, past_sequence_length, head_dim].
 */
export function cachedCausalLMInputs(
  g: Graph,
  config: Pick<ModelConfig, 'numLayers' | 'numKvHeads' | 'headDim'>,
  options: { past?: boolean; sequenceLength?: string | number } = {},
): CachedCausalLMInputs {
  const seq = options.sequenceLength ?? 'sequence_length';
  const past = options.past ?? true;
  const cacheShape = ['batch_size', config.numKvHeads, 'past_sequence_length', config.headDim];
  return {
    inputIds: g.input('input_ids', 'int64', ['batch_size', seq]),
    attentionMask: g.input('attention_mask', 'int64', ['batch_size', past ? 'total_sequence_length' : seq]),
    positionIds: g.input('position_ids', 'int64', ['batch_size', seq]),
    pastKeyValues: past
      ? Array.from({ length: config.numLayers }, (_, i) => ({
          key: g.input(`past_key_values.${i}.key`, 'float32', cacheShape),
          value: g.input(`past_key_values.${i}.value`, 'float32', cacheShape),
        }))
      : undefined,
  };
}

/** A linear layer as a wrapper sees it. */
export interface LinearModule {
  /** Hugging Face module name, e.g. `model.layers.3.self_attn.q_proj`. */
  readonly name: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** [out, in] (torch layout). */
  readonly weight: Tensor;
  readonly bias?: Tensor;
}

/** A parameter an adapter adds (e.g. LoRA A/B): a graph input when trainable, an embedded initializer otherwise. */
export interface AdapterParameter {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
  readonly trainable: boolean;
}

/** What a linear wrapper gets: the layer's input, the base output W x + b, and a way to declare its own parameters. */
export interface LinearCall {
  readonly g: Graph;
  /** Input [..., in_features]. */
  readonly x: Tensor;
  /** W x + b (or the previous wrapper's output), [..., out_features]. */
  readonly base: Tensor;
  /** W x + b of the layer alone, before any wrapper (DoRA rescales it). */
  readonly linear: Tensor;
  readonly module: LinearModule;
  /**
   * Set when the forward pass trains (`ForwardOptions.dropoutSeed`): the int64 scalar that dropout masks derive from.
   * Undefined in evaluation, where wrappers apply no dropout.
   */
  readonly dropoutSeed?: Tensor;
  /** Declares (once per graph) and returns an adapter parameter. */
  parameter(p: AdapterParameter): Tensor;
}

/** Replaces a linear layer's output; wrappers of one module apply in the order they were added. */
export type LinearWrapper = (call: LinearCall) => Tensor;

/** A decoder layer as the per-layer hook sees it: `build` appends the layer to the graph and returns its output. */
export interface DecoderLayerCall {
  readonly g: Graph;
  readonly index: number;
  readonly hidden: Tensor;
  build(hidden: Tensor): Tensor;
}

/** Decides how each decoder layer is built, e.g. `(l) => l.g.checkpoint(() => l.build(l.hidden))`. */
export type DecoderLayerHook = (layer: DecoderLayerCall) => Tensor;

/** A trainable tensor of a built graph: fed each step under `name`. */
export interface TrainableParameter {
  readonly name: string;
  readonly tensor: Tensor;
  readonly shape: readonly number[];
  /** The starting value (from the checkpoint or the adapter). */
  initial(): Float32Array;
}

export interface ForwardOptions {
  /** Build without the linear wrappers: the base model (e.g. the DPO reference of a LoRA policy). */
  readonly disableAdapters?: boolean;
  /**
   * Training mode: an int64 scalar (one value per micro-batch, see `dropoutSeed()` in adapters/dropout.ts) from which
   * adapters derive their dropout masks in the graph. Without it adapters apply no dropout (evaluation).
   */
  readonly dropoutSeed?: Tensor;
  /** Training with NEFTune: noise [batch, seq, hidden] added to the input embeddings. */
  readonly embeddingNoise?: Tensor;
}

export interface ForwardResult {
  /** [batch, seq, vocab]. */
  readonly logits: Tensor;
  /** The final hidden states after model.norm, [batch, seq, hidden] (what lm_head and value heads read). */
  readonly hiddenStates: Tensor;
}

export interface CachedForwardOptions {
  /** Build without the linear wrappers (the base model). */
  readonly disableAdapters?: boolean;
  /** Apply the final norm and lm_head to the last position only: logits [batch, 1, vocab] (generation). */
  readonly lastPositionOnly?: boolean;
}

export interface CachedForwardResult extends ForwardResult {
  /** Per layer: the past followed by this pass's keys and values, [batch, kv_heads, past + seq, head_dim]. */
  readonly presentKeyValues: readonly KeyValue[];
}

interface GraphParameters {
  readonly tensors: Map<string, Tensor>;
  readonly trainable: Map<string, TrainableParameter>;
}

/** The mask value for disallowed attention scores; finite so fully masked rows give a uniform softmax, not NaN. */
const MASKED = -3.4028234663852886e38;

/**
 * A Llama-family causal LM (llama, mistral, qwen2, qwen3) over Hugging Face weights. Builds its forward pass into a
 * Graph: trainable parameters become graph inputs (named as in Hugging Face), frozen ones initializers that point into
 * the safetensors files. Tuners choose what trains (setTrainable) and wrap linear layers by module name (wrapLinear).
 */
export class CausalLM implements TunableModel<LinearWrapper> {
  private readonly specs: ParameterSpec[];
  private readonly specByName: Map<string, ParameterSpec>;
  private readonly linears: LinearSpec[];
  private readonly trainable = new Set<string>();
  private readonly wrappers = new Map<string, LinearWrapper[]>();
  private layerHook: DecoderLayerHook | undefined;
  private readonly built = new WeakMap<Graph, GraphParameters>();
  private currentWeights: WeightSource;
  private quantized: QuantizedWeights | undefined;
  /** Tensors replaced by `setWeights`, read through an overlay over the loaded weights. */
  private updated: Map<string, { shape: readonly number[]; data: Float32Array }> | undefined;

  constructor(
    readonly config: ModelConfig,
    weights: WeightSource,
    /** Where the model came from, for messages. */
    readonly source = 'model',
  ) {
    this.currentWeights = weights;
    this.specs = parameterSpecs(config);
    this.specByName = new Map(this.specs.map((s) => [s.name, s]));
    this.linears = linearSpecs(config);
    const problems: string[] = [];
    for (const s of this.specs) {
      if (!weights.has(s.name)) {
        problems.push(`tensor '${s.name}' is missing (expected shape [${s.shape.join(', ')}])`);
        continue;
      }
      const got = weights.shape(s.name);
      if (got.length !== s.shape.length || got.some((d, i) => d !== s.shape[i])) {
        problems.push(`tensor '${s.name}' has shape [${got.join(', ')}], expected [${s.shape.join(', ')}]`);
      }
    }
    if (problems.length) {
      throw new TunekitError(`${source}: the weights do not match config.json (${config.modelType}):\n  - ${problems.join('\n  - ')}`);
    }
  }

  /** Loads a Hugging Face model folder: config.json plus model.safetensors or a sharded index. */
  static load(dir: string, options: LoadWeightsOptions = {}): CausalLM {
    const config = readModelConfig(dir);
    return new CausalLM(config, SafetensorsWeights.open(dir, options), dir);
  }

  /** The base weights the graphs read (after any `overrideWeights`). */
  get weights(): WeightSource {
    return this.currentWeights;
  }

  /**
   * Replaces base tensors by those of `overrides` (same names and shapes), e.g. PiSSA's residual weights. Graphs built
   * afterwards read the replacements (as initializers pointing into their file when it is on disk); graphs built
   * before keep what they had.
   */
  overrideWeights(overrides: WeightSource): void {
    const problems: string[] = [];
    for (const name of overrides.names) {
      const spec = this.specByName.get(name);
      if (!spec) problems.push(`'${name}' is not a parameter of the model`);
      else if (overrides.shape(name).join() !== spec.shape.join()) problems.push(`'${name}' has shape [${overrides.shape(name).join(', ')}], expected [${spec.shape.join(', ')}]`);
    }
    if (this.quantized) problems.push('the base is quantized; override weights before quantizing');
    if (problems.length) throw new TunekitError(`${this.source}: cannot override base weights:\n  - ${problems.join('\n  - ')}`);
    this.currentWeights = new OverlayWeights(this.currentWeights, overrides);
  }

  /**
   * Stores the base tensors `q` holds quantized (see `quantize`): graphs built afterwards read them as quantized
   * initializers plus dequantization nodes, and `weights` reads their dequantized values. They must stay frozen.
   */
  useQuantizedWeights(q: QuantizedWeights): void {
    const problems = q.names.filter((n) => !this.specByName.has(n)).map((n) => `'${n}' is not a parameter of the model`);
    problems.push(...q.names.filter((n) => this.trainable.has(n)).map((n) => `'${n}' is trainable; quantized weights must be frozen`));
    if (problems.length) throw new TunekitError(`${this.source}: cannot quantize the base:\n  - ${problems.join('\n  - ')}`);
    this.quantized = q;
    this.currentWeights = new OverlayWeights(this.currentWeights, q);
  }

  /**
   * Replaces base tensors by values trained outside a graph (the blocks BAdam stops training): graphs built afterwards
   * embed these values, and `weights` reads them. Names and lengths must match the model's parameters.
   */
  setWeights(values: ReadonlyMap<string, Float32Array>): void {
    const problems: string[] = [];
    for (const [name, data] of values) {
      const spec = this.specByName.get(name);
      if (!spec) problems.push(`'${name}' is not a parameter of the model`);
      else if (data.length !== spec.shape.reduce((a, b) => a * b, 1)) problems.push(`'${name}' has ${data.length} values, expected shape [${spec.shape.join(', ')}]`);
      else if (this.quantized?.has(name)) problems.push(`'${name}' is quantized and frozen`);
    }
    if (problems.length) throw new TunekitError(`${this.source}: cannot set base weights:\n  - ${problems.join('\n  - ')}`);
    if (!this.updated) {
      this.updated = new Map();
      this.currentWeights = new OverlayWeights(this.currentWeights, new MemoryWeights(this.updated));
    }
    for (const [name, data] of values) this.updated.set(name, { shape: this.specByName.get(name)!.shape, data });
  }

  /** The quantized base tensors, if `useQuantizedWeights` was called. */
  get quantizedWeights(): QuantizedWeights | undefined {
    return this.quantized;
  }

  // ------------------------------------------------------------------------------------------- TunableModel

  parameters(): ParameterInfo[] {
    return this.specs.map((s) => ({ name: s.name, shape: [...s.shape], dtype: 'float32' }));
  }

  linearModules(): string[] {
    return this.linears.map((l) => l.name);
  }

  /** The linear layers with their sizes. */
  linearSpecs(): readonly LinearSpec[] {
    return this.linears;
  }

  setTrainable(parameterName: string, trainable: boolean): void {
    if (!this.specByName.has(parameterName)) {
      const hint = parameterName === 'lm_head.weight' && this.config.tieWordEmbeddings ? ' (lm_head is tied to model.embed_tokens.weight)' : '';
      throw new TunekitError(`${this.source}: no parameter named '${parameterName}'${hint}`);
    }
    if (trainable) this.trainable.add(parameterName);
    else this.trainable.delete(parameterName);
  }

  wrapLinear(moduleName: string, wrapper: LinearWrapper): void {
    if (!this.linears.some((l) => l.name === moduleName)) {
      throw new TunekitError(`${this.source}: no linear layer named '${moduleName}' (e.g. ${this.linears[0]?.name})`);
    }
    const list = this.wrappers.get(moduleName) ?? [];
    list.push(wrapper);
    this.wrappers.set(moduleName, list);
  }

  // ------------------------------------------------------------------------------------------- the rest

  /** Makes every base parameter trainable (full fine-tuning) or frozen. */
  setAllTrainable(trainable: boolean): void {
    for (const s of this.specs) this.setTrainable(s.name, trainable);
  }

  isTrainable(parameterName: string): boolean {
    return this.trainable.has(parameterName);
  }

  parameterSpec(name: string): ParameterSpec | undefined {
    return this.specByName.get(name);
  }

  /** Sets how decoder layers are built (activation checkpointing); undefined restores plain building. */
  setLayerHook(hook: DecoderLayerHook | undefined): void {
    this.layerHook = hook;
  }

  /** The trainable tensors declared in `g` so far (base parameters and adapter parameters), in declaration order. */
  trainableParameters(g: Graph): TrainableParameter[] {
    return [...(this.built.get(g)?.trainable.values() ?? [])];
  }

  /** Appends the forward pass to `g`. Calling it twice in one graph shares the parameter tensors. */
  forward(g: Graph, inputs: CausalLMInputs, options: ForwardOptions = {}): ForwardResult {
    const c = this.config;
    const P = (name: string) => this.param(g, name);
    const eps = c.rmsNormEps;

    const embed = P('model.embed_tokens.weight');
    let x = g.Gather(embed, inputs.inputIds, 0);
    if (options.embeddingNoise) x = g.Add(x, options.embeddingNoise);
    const keep = attentionKeepMask(g, inputs, c.slidingWindow);
    const { cos, sin } = ropeCosSin(g, inputs.positionIds, c);

    const proj = (name: string, input: Tensor): Tensor => {
      const spec = this.linears.find((l) => l.name === name)!;
      const weight = P(`${name}.weight`);
      const bias = spec.bias ? P(`${name}.bias`) : undefined;
      const layerOut = linear(input, weight, bias);
      let out = layerOut;
      if (!options.disableAdapters) {
        const module: LinearModule = { name, inFeatures: spec.inFeatures, outFeatures: spec.outFeatures, weight, bias };
        for (const wrap of this.wrappers.get(name) ?? []) {
          out = wrap({ g, x: input, base: out, linear: layerOut, module, dropoutSeed: options.dropoutSeed, parameter: (p) => this.adapterParam(g, p) });
        }
      }
      return out;
    };

    const kvh = c.numKvHeads;
    const group = c.numHeads / c.numKvHeads;
    const hd = c.headDim;
    const buildLayer = (i: number, hidden: Tensor): Tensor => {
      const a = `model.layers.${i}.self_attn`;
      const h = rmsNorm(hidden, P(`model.layers.${i}.input_layernorm.weight`), eps);
      // Heads as [batch, kv_heads, group, seq, head_dim]: query head kv*group + r uses kv head kv, and the batched
      // MatMul broadcasts k/v over the group axis instead of copying them.
      let q = g.Reshape(proj(`${a}.q_proj`, h), [0, 0, kvh, group, hd]);
      let k = g.Reshape(proj(`${a}.k_proj`, h), [0, 0, kvh, 1, hd]);
      const v = g.Transpose(g.Reshape(proj(`${a}.v_proj`, h), [0, 0, kvh, 1, hd]), [0, 2, 3, 1, 4]);
      if (c.qkNorm) {
        q = rmsNorm(q, P(`${a}.q_norm.weight`), eps);
        k = rmsNorm(k, P(`${a}.k_norm.weight`), eps);
      }
      q = applyRope(g.Transpose(q, [0, 2, 3, 1, 4]), cos, sin, hd);
      k = applyRope(g.Transpose(k, [0, 2, 3, 1, 4]), cos, sin, hd);
      const scores = g.Mul(g.MatMul(q, g.Transpose(k, [0, 1, 2, 4, 3])), 1 / Math.sqrt(hd));
      const probs = softmax(maskedFill(scores, keep, MASKED), -1);
      const ctx = g.Reshape(g.Transpose(g.MatMul(probs, v), [0, 3, 1, 2, 4]), [0, 0, c.numHeads * hd]);
      const afterAttn = g.Add(hidden, proj(`${a}.o_proj`, ctx));

      const m = `model.layers.${i}.mlp`;
      const h2 = rmsNorm(afterAttn, P(`model.layers.${i}.post_attention_layernorm.weight`), eps);
      const act = g.Mul(silu(proj(`${m}.gate_proj`, h2)), proj(`${m}.up_proj`, h2));
      return g.Add(afterAttn, proj(`${m}.down_proj`, act));
    };

    for (let i = 0; i < c.numLayers; i++) {
      const build = (hidden: Tensor) => buildLayer(i, hidden);
      x = this.layerHook ? this.layerHook({ g, index: i, hidden: x, build }) : build(x);
    }
    const hiddenStates = rmsNorm(x, P('model.norm.weight'), eps);
    const lmHead = c.tieWordEmbeddings ? embed : P('lm_head.weight');
    return { logits: linear(hiddenStates, lmHead), hiddenStates };
  }

  /**
   * Appends a forward pass with a key/value cache (Hugging Face's `past_key_values`): the tokens of `inputs` come
   * after the cached ones, `attentionMask` covers past and current tokens ([batch, past + seq]) and each layer's
   * present key/value ([batch, kv_heads, past + seq, head_dim], keys after RoPE) is returned for the next step.
   * Without past values this is the prompt pass. Same parameters, wrappers and mask rules as `forward`: query t
   * attends to key s iff s <= past + t, the mask allows s and (sliding window w) past + t - s < w.
   */
  forwardWithCache(g: Graph, inputs: CachedCausalLMInputs, options: CachedForwardOptions = {}): CachedForwardResult {
    const c = this.config;
    const P = (name: string) => this.param(g, name);
    const eps = c.rmsNormEps;
    const proj = this.cachedProjector(g, options);
    const past = inputs.pastKeyValues;
    if (past && past.length !== c.numLayers) throw new TunekitError(`${this.source}: ${past.length} past key/values for ${c.numLayers} layers`);

    const embed = P('model.embed_tokens.weight');
    let x = g.Gather(embed, inputs.inputIds, 0);
    const kvh = c.numKvHeads;
    const group = c.numHeads / c.numKvHeads;
    const hd = c.headDim;
    // [batch, 1, seq, total], repeated over the group to line up with queries laid out [batch, kv, group*seq, hd].
    const keep4 = g.Squeeze(cachedAttentionKeepMask(g, inputs, c.slidingWindow), [1]);
    const keep = group === 1 ? keep4 : g.Concat(Array.from({ length: group }, () => keep4), 2);
    const { cos, sin } = ropeCosSin(g, inputs.positionIds, c);

    const presentKeyValues: KeyValue[] = [];
    for (let i = 0; i < c.numLayers; i++) {
      const a = `model.layers.${i}.self_attn`;
      const h = rmsNorm(x, P(`model.layers.${i}.input_layernorm.weight`), eps);
      let q = g.Reshape(proj(`${a}.q_proj`, h), [0, 0, kvh, group, hd]);
      let k = g.Reshape(proj(`${a}.k_proj`, h), [0, 0, kvh, 1, hd]);
      const v = g.Transpose(g.Reshape(proj(`${a}.v_proj`, h), [0, 0, kvh, hd]), [0, 2, 1, 3]);
      if (c.qkNorm) {
        q = rmsNorm(q, P(`${a}.q_norm.weight`), eps);
        k = rmsNorm(k, P(`${a}.k_norm.weight`), eps);
      }
      q = applyRope(g.Transpose(q, [0, 2, 3, 1, 4]), cos, sin, hd);
      const kNew = g.Squeeze(applyRope(g.Transpose(k, [0, 2, 3, 1, 4]), cos, sin, hd), [2]);
      const key = past ? g.Concat([past[i].key, kNew], 2) : kNew;
      const value = past ? g.Concat([past[i].value, v], 2) : v;
      presentKeyValues.push({ key, value });
      // One [group*seq, hd] x [hd, total] product per kv head rather than a broadcast over the group axis.
      const scores = g.Mul(g.MatMul(g.Reshape(q, [0, 0, -1, hd]), g.Transpose(key, [0, 1, 3, 2])), 1 / Math.sqrt(hd));
      const probs = softmax(maskedFill(scores, keep, MASKED), -1);
      const ctx = g.Reshape(g.MatMul(probs, value), [0, 0, group, -1, hd]);
      const afterAttn = g.Add(x, proj(`${a}.o_proj`, g.Reshape(g.Transpose(ctx, [0, 3, 1, 2, 4]), [0, 0, c.numHeads * hd])));

      const m = `model.layers.${i}.mlp`;
      const h2 = rmsNorm(afterAttn, P(`model.layers.${i}.post_attention_layernorm.weight`), eps);
      const act = g.Mul(silu(proj(`${m}.gate_proj`, h2)), proj(`${m}.up_proj`, h2));
      x = g.Add(afterAttn, proj(`${m}.down_proj`, act));
    }
    if (options.lastPositionOnly) x = g.Slice(x, [-1], [SLICE_TO_END], [1]);
    const hiddenStates = rmsNorm(x, P('model.norm.weight'), eps);
    const lmHead = c.tieWordEmbeddings ? embed : P('lm_head.weight');
    return { logits: linear(hiddenStates, lmHead), hiddenStates, presentKeyValues };
  }

  /** A linear layer of the cached pass: W x + b, then the module's wrappers (evaluation: no dropout seed). */
  private cachedProjector(g: Graph, options: ForwardOptions): (name: string, input: Tensor) => Tensor {
    return (name, input) => {
      const spec = this.linears.find((l) => l.name === name)!;
      const weight = this.param(g, `${name}.weight`);
      const bias = spec.bias ? this.param(g, `${name}.bias`) : undefined;
      const layerOut = linear(input, weight, bias);
      let out = layerOut;
      if (!options.disableAdapters) {
        const module: LinearModule = { name, inFeatures: spec.inFeatures, outFeatures: spec.outFeatures, weight, bias };
        for (const wrap of this.wrappers.get(name) ?? []) {
          out = wrap({ g, x: input, base: out, linear: layerOut, module, parameter: (p) => this.adapterParam(g, p) });
        }
      }
      return out;
    };
  }

  private graphParameters(g: Graph): GraphParameters {
    let gp = this.built.get(g);
    if (!gp) {
      gp = { tensors: new Map(), trainable: new Map() };
      this.built.set(g, gp);
    }
    return gp;
  }

  private param(g: Graph, name: string): Tensor {
    const gp = this.graphParameters(g);
    const known = gp.tensors.get(name);
    if (known) return known;
    const spec = this.specByName.get(name)!;
    let t: Tensor;
    if (this.trainable.has(name)) {
      if (this.quantized?.has(name)) throw new TunekitError(`${this.source}: '${name}' is quantized and cannot train (QLoRA trains adapters over a frozen base)`);
      t = g.input(name, 'float32', spec.shape);
      gp.trainable.set(name, { name, tensor: t, shape: spec.shape, initial: () => this.weights.read(name).slice() });
    } else if (this.quantized?.has(name)) {
      t = this.quantized.dequantize(g, name);
    } else {
      t = g.initializer(name, 'float32', spec.shape, this.weights.external(name) ?? this.weights.read(name));
    }
    gp.tensors.set(name, t);
    return t;
  }

  private adapterParam(g: Graph, p: AdapterParameter): Tensor {
    const gp = this.graphParameters(g);
    const known = gp.tensors.get(p.name);
    if (known) return known;
    const n = p.shape.reduce((a, b) => a * b, 1);
    if (p.data.length !== n) throw new TunekitError(`adapter parameter '${p.name}': ${p.data.length} values for shape [${p.shape.join(', ')}]`);
    let t: Tensor;
    if (p.trainable) {
      t = g.input(p.name, 'float32', p.shape);
      gp.trainable.set(p.name, { name: p.name, tensor: t, shape: p.shape, initial: () => p.data.slice() });
    } else {
      t = g.initializer(p.name, 'float32', p.shape, p.data);
    }
    gp.tensors.set(p.name, t);
    return t;
  }
}

/**
 * Boolean [batch, 1, 1, seq, seq]: query t may attend to key s iff s <= t, attention_mask[b, s] != 0, both carry the
 * same attention_mask value (the example index of neat packing; 1 otherwise) and, with a
 * sliding window w, t - s < w.
 */
export function attentionKeepMask(g: Graph, inputs: CausalLMInputs, slidingWindow: number | null = null): Tensor {
  const n = g.Squeeze(g.Shape(inputs.inputIds, 1, 2), [0]);
  const r = g.Range(g.constant(0, 'int64'), n, g.constant(1, 'int64'));
  const diff = g.Sub(g.Reshape(r, [-1, 1]), g.Reshape(r, [1, -1])); // query - key
  let keep = g.GreaterOrEqual(diff, g.constant(0, 'int64'));
  if (slidingWindow !== null) keep = g.And(keep, g.Less(diff, g.constant(slidingWindow, 'int64')));
  // Range's length is only known at run time; restate [seq, seq] so downstream shapes infer.
  keep = g.Reshape(keep, g.Concat([g.Shape(inputs.inputIds, 1, 2), g.Shape(inputs.inputIds, 1, 2)], 0));
  const mask = inputs.attentionMask;
  const pad = g.Unsqueeze(g.Not(g.Equal(mask, g.constant(0, mask.dtype))), [1, 2, 3]);
  // Packed sequences (neat_packing) number their examples 1, 2, ... in attention_mask: a token attends only within
  // its own example. With a plain 0/1 mask every real token shares segment 1, so this changes nothing.
  const sameSegment = g.Equal(g.Unsqueeze(mask, [1, 2, 4]), g.Unsqueeze(mask, [1, 2, 3]));
  return g.And(g.And(keep, pad), sameSegment);
}

/**
 * Boolean [batch, 1, 1, seq, total] for a cached pass: the queries are the last `seq` of `total` positions, so query
 * t (index past + t) may attend to key s iff s <= past + t, attention_mask[b, s] == 1 and, with a sliding window w,
 * past + t - s < w.
 */
export function cachedAttentionKeepMask(g: Graph, inputs: CachedCausalLMInputs, slidingWindow: number | null = null): Tensor {
  const seqShape = g.Shape(inputs.inputIds, 1, 2);
  const totalShape = g.Shape(inputs.attentionMask, 1, 2);
  const total = g.Squeeze(totalShape, [0]);
  const past = g.Sub(total, g.Squeeze(seqShape, [0]));
  const one = g.constant(1, 'int64');
  const diff = g.Sub(g.Reshape(g.Range(past, total, one), [-1, 1]), g.Reshape(g.Range(g.constant(0, 'int64'), total, one), [1, -1])); // query - key
  let keep = g.GreaterOrEqual(diff, g.constant(0, 'int64'));
  if (slidingWindow !== null) keep = g.And(keep, g.Less(diff, g.constant(slidingWindow, 'int64')));
  // Range's length is only known at run time; restate [seq, total] so downstream shapes infer.
  keep = g.Reshape(keep, g.Concat([seqShape, totalShape], 0));
  const pad = g.Unsqueeze(g.Not(g.Equal(inputs.attentionMask, g.constant(0, inputs.attentionMask.dtype))), [1, 2, 3]);
  return g.And(keep, pad);
}
