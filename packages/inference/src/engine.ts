import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { TunekitError, type ChatMessage, type Template } from '@tunekit/kernel';
import { CausalLM, createRng, isPissaInit, quantize, type LoraAdapter, type Rng } from '@tunekit/models';
import { HfTokenizer } from '@tunekit/tokenizer';
import { loadAdapters, withAdapters, type AdapterMode, type AdapterOptions } from './adapters';
import { BeamHypotheses } from './beam-search';
import { Decoder, promptPass, stepPass, type DecoderOptions, type DecoderPass, type KvCache, type PassOutput } from './decoder';
import { applyRepetitionPenalty, argmax, chooseToken, logSoftmax, topIndices } from './logits';
import { newTokenBudget, resolveSettings, type GenerationSettings } from './settings';
import { TextStream } from './text-stream';

export type FinishReason = 'stop' | 'length';

export interface GenerationResult {
  /** The generated ids; the eos id that ended the sequence is included, as Hugging Face's generate returns it. */
  readonly tokenIds: number[];
  /** 'stop': an eos id or a stop string ended it; 'length': the token budget did. */
  readonly finishReason: FinishReason;
  /** The decoded answer when the engine has a tokenizer: without the ending eos, cut before a stop string. */
  readonly text?: string;
  /** Beam search: the hypothesis score, sum(log p) / generated_length ** length_penalty (Hugging Face's sequence_scores). */
  readonly score?: number;
}

/** One generated token of one sequence (greedy and sampling; beam search reports nothing until it ends). */
export interface TokenEvent {
  /** Index of the prompt in the batch. */
  readonly sequence: number;
  readonly tokenId: number;
  /** Text that became stable with this token ('' when the engine has no tokenizer or nothing is stable yet). */
  readonly text: string;
}

export interface EngineOptions extends DecoderOptions {
  /** A Hugging Face model folder (config.json, safetensors, optionally the tokenizer files). */
  readonly modelDir: string;
  /** PEFT LoRA folders, applied in order. */
  readonly adapters?: readonly string[];
  /** Default 'merge' (faster per step, see the package README). */
  readonly adapterMode?: AdapterMode;
  /** Seed of a PiSSA adapter's randomized SVD (the training run's `seed`). */
  readonly seed?: number;
  /** Where tokenizer.json lives; default modelDir when it has one. */
  readonly tokenizerDir?: string;
  /** `InferenceBackend.sessionOptions()` of the selected backend (execution providers, threads). */
  readonly backendOptions?: Readonly<Record<string, unknown>>;
  /**
   * A quantized base (LLaMA-Factory's quantization_bit): the decoder layers' linear weights are stored blockwise
   * quantized and dequantized in the graph, as in QLoRA training. Adapters then stay separate (they cannot be merged
   * into quantized weights), and only one is accepted, as LLaMA-Factory accepts one.
   */
  readonly quantization?: { readonly bits: 4 | 8; readonly type?: 'nf4' | 'fp4'; readonly blockSize?: number };
  readonly log?: (line: string) => void;
}

export interface ModelEngineOptions extends DecoderOptions {
  readonly adapters?: readonly LoraAdapter[];
  readonly adapterMode?: AdapterMode;
  /** PiSSA adapters: the work folder of their residual base weights and the seed of their SVD. */
  readonly adapterOptions?: AdapterOptions;
  readonly tokenizer?: HfTokenizer;
  /** Ids that end generation; default: config.json's eos_token_id plus the tokenizer's eos ids. */
  readonly eosTokenIds?: readonly number[];
}

export interface ChatOptions extends Partial<GenerationSettings> {
  /** The chat template (a TEMPLATE contribution, e.g. `createTemplate('llama3')` of @tunekit/plugin-templates). */
  readonly template: Template;
  /** The system prompt; default: settings.defaultSystem, then the template's own. */
  readonly system?: string;
  /** Tool definitions as a JSON string. */
  readonly tools?: string;
  readonly enableThinking?: boolean;
}

export interface ChatCompletion extends GenerationResult {
  readonly text: string;
  readonly promptTokens: number;
}

/** A sequence being generated (greedy and sampling). */
interface Sequence {
  readonly index: number;
  readonly prompt: readonly number[];
  readonly tokens: number[];
  readonly budget: number;
  /** Left padding of its row in the prompt pass. */
  pads: number;
  readonly stream?: TextStream;
  finish?: FinishReason;
}

/**
 * Generates from a causal LM with a key/value-cached decoder graph on onnxruntime: batches are left-padded, each
 * sequence stops on its own (eos ids, stop strings, token budget) and finished rows leave the batch. Greedy, sampling
 * (Hugging Face's processor order: repetition penalty, temperature, top-k, top-p; seeded) and beam search.
 */
export class GenerationEngine {
  private constructor(
    readonly model: CausalLM,
    private readonly decoder: Decoder,
    readonly tokenizer: HfTokenizer | undefined,
    readonly eosTokenIds: readonly number[],
    private readonly padTokenId: number,
    /** A temporary folder the engine made (PiSSA residuals) and removes on release. */
    private readonly ownedDir?: string,
  ) {}

  /** Loads a model folder (and its tokenizer and adapters) and opens the decoder session. */
  static async load(options: EngineOptions): Promise<GenerationEngine> {
    const model = CausalLM.load(options.modelDir, { log: options.log });
    const quantization = options.quantization;
    if (quantization && (options.adapters?.length ?? 0) > 1) {
      throw new TunekitError(`adapter_name_or_path: a quantized base (quantization_bit ${quantization.bits}) takes a single adapter, as in LLaMA-Factory; merge the adapters first with tunekit export, or remove quantization_bit.`);
    }
    if (quantization) quantize(model, { bits: quantization.bits, type: quantization.type ?? 'nf4', blockSize: quantization.blockSize ?? 64, log: options.log });
    const adapters = loadAdapters(model, options.adapters ?? []);
    const tokenizerDir = options.tokenizerDir ?? (fs.existsSync(path.join(options.modelDir, 'tokenizer.json')) ? options.modelDir : undefined);
    const tokenizer = tokenizerDir ? HfTokenizer.fromFolder(tokenizerDir, { log: options.log }) : undefined;
    const generationEos = readEosIds(path.join(options.modelDir, 'generation_config.json'));
    const workDir = adapters.some((a) => isPissaInit(a.config.initLoraWeights)) ? fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-pissa-')) : undefined;
    try {
      return await GenerationEngine.fromModel(
        model,
        {
          ...options,
          adapterMode: quantization ? 'separate' : options.adapterMode,
          backend: options.backendOptions ?? options.backend,
          adapters,
          adapterOptions: { workDir, seed: options.seed, log: options.log },
          tokenizer,
          eosTokenIds: unique([...generationEos, ...eosIdsOf(model.config.raw), ...(tokenizer?.eosTokenIds ?? [])]),
        },
        workDir,
      );
    } catch (e) {
      if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
      throw e;
    }
  }

  /** An engine over a model already in memory (e.g. a random one, or the trainer's). */
  static async fromModel(model: CausalLM, options: ModelEngineOptions = {}, ownedDir?: string): Promise<GenerationEngine> {
    const runModel = withAdapters(model, options.adapters ?? [], options.adapterMode ?? 'merge', options.adapterOptions);
    const decoder = await Decoder.create(runModel, options);
    const eos = options.eosTokenIds ?? unique([...eosIdsOf(model.config.raw), ...(options.tokenizer?.eosTokenIds ?? [])]);
    const raw = model.config.raw;
    const pad = typeof raw.pad_token_id === 'number' ? raw.pad_token_id : (options.tokenizer?.padTokenId ?? eos[0] ?? 0);
    return new GenerationEngine(runModel, decoder, options.tokenizer, eos, pad, ownedDir);
  }

  async release(): Promise<void> {
    await this.decoder.release();
    if (this.ownedDir) fs.rmSync(this.ownedDir, { recursive: true, force: true });
  }

  /**
   * Generates a continuation of every prompt (token ids). `onToken` sees each token as it is chosen (greedy and
   * sampling). Results are in prompt order.
   */
  async generate(prompts: readonly (readonly number[])[], settings: Partial<GenerationSettings> = {}, onToken?: (event: TokenEvent) => void): Promise<GenerationResult[]> {
    const s = resolveSettings(settings);
    if (prompts.some((p) => p.length === 0)) throw new TunekitError('generate: every prompt needs at least one token');
    const vocab = this.model.config.vocabSize;
    const bad = prompts.flat().find((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
    if (bad !== undefined) throw new TunekitError(`generate: token id ${bad} is outside the vocabulary (0..${vocab - 1})`);
    if (s.stopStrings?.length && !this.tokenizer) throw new TunekitError('generate: stop strings need a tokenizer (load the engine from a folder with tokenizer.json)');
    if (s.numBeams > 1) {
      if (s.doSample) throw new TunekitError('beam sampling (num_beams > 1 with do_sample) is not supported; set do_sample: false for beam search');
      return this.beamSearch(prompts, s);
    }
    return this.sample(prompts, s, onToken);
  }

  /**
   * Answers a conversation: the template encodes the messages followed by an empty assistant turn (as
   * LLaMA-Factory's ChatModel), generation stops at eos, at the template's stop words (as token ids, as LLaMA-Factory's
   * get_stop_token_ids, and as text) or at the budget, and `onText` receives the answer as it becomes stable.
   */
  async chatCompletion(messages: readonly ChatMessage[], options: ChatOptions, onText?: (text: string) => void): Promise<ChatCompletion> {
    const tokenizer = this.tokenizer;
    if (!tokenizer) throw new TunekitError('chatCompletion needs a tokenizer: load the engine from a folder with tokenizer.json');
    const { template, system, tools, enableThinking, ...settings } = options;
    const s = resolveSettings(settings);
    const { promptIds } = template.encodeOneturn(tokenizer, [...messages, { role: 'assistant', content: '' }], {
      system: system ?? s.defaultSystem,
      tools,
      enableThinking,
    });
    const stopIds = template.stopWords.map((w) => tokenizer.tokenToId(w)).filter((id): id is number => id !== undefined);
    const eosTokenIds = unique([...(s.eosTokenIds ?? this.eosTokenIds), ...stopIds]);
    const stopStrings = unique([...template.stopWords, ...(s.stopStrings ?? [])]);
    const [result] = await this.generate([[...promptIds]], { ...s, eosTokenIds, stopStrings }, onText ? (e) => e.text && onText(e.text) : undefined);
    if (s.numBeams > 1 && onText && result.text) onText(result.text);
    return { ...result, text: result.text ?? '', promptTokens: promptIds.length };
  }

  /** The next-token logits after each prompt (one left-padded prompt pass), [vocab] per prompt. */
  async promptLogits(prompts: readonly (readonly number[])[]): Promise<Float32Array[]> {
    const vocab = this.model.config.vocabSize;
    const prompt = promptPass(prompts, this.padTokenId);
    const out = await this.decoder.run(this.decoder.newCache(prompts.length, prompt.width), prompt.pass, 'logits');
    if (!('logits' in out)) throw new Error('unreachable');
    return prompts.map((_, i) => out.logits.slice(i * vocab, (i + 1) * vocab));
  }

  // ------------------------------------------------------------------------------------------------ greedy / sampling

  private async sample(prompts: readonly (readonly number[])[], s: GenerationSettings, onToken?: (event: TokenEvent) => void): Promise<GenerationResult[]> {
    const eos = new Set(s.eosTokenIds ?? this.eosTokenIds);
    const sequences: Sequence[] = prompts.map((prompt, index) => ({
      index,
      prompt,
      tokens: [],
      budget: newTokenBudget(s, prompt.length),
      pads: 0,
      stream: this.tokenizer ? new TextStream(this.tokenizer, { skipSpecialTokens: s.skipSpecialTokens, stopStrings: s.stopStrings }) : undefined,
    }));
    let active = sequences.filter((q) => {
      if (q.budget <= 0) q.finish = 'length';
      return q.budget > 0;
    });
    if (active.length > 0) {
      const rng = createRng(s.seed);
      // Greedy without processors only needs the argmax, which the graph computes: the logits stay inside.
      const want = !s.doSample && s.repetitionPenalty === 1 ? 'argmax' : 'logits';
      const prompt = promptPass(active.map((q) => q.prompt), this.padTokenId);
      active.forEach((q, i) => (q.pads = prompt.pads[i]));
      const cache = this.decoder.newCache(active.length, prompt.width + Math.max(...active.map((q) => q.budget)));
      let out = await this.decoder.run(cache, prompt.pass, want);
      for (;;) {
        const keep: number[] = [];
        active.forEach((q, row) => {
          const token = this.choose(out, row, q, s, rng);
          q.tokens.push(token);
          let text = '';
          if (eos.has(token)) q.finish = 'stop';
          else if (q.stream) {
            text = q.stream.push(token);
            if (q.stream.stopped) q.finish = 'stop';
          }
          if (!q.finish && q.tokens.length >= q.budget) q.finish = 'length';
          if (q.finish && q.stream) text += q.stream.finish();
          onToken?.({ sequence: q.index, tokenId: token, text });
          if (!q.finish) keep.push(row);
        });
        if (keep.length === 0) break;
        if (keep.length < active.length) {
          cache.selectRows(keep);
          active = keep.map((row) => active[row]);
        }
        out = await this.decoder.run(cache, stepPass(cache, active), want);
      }
    }
    return sequences.map((q) => ({ tokenIds: q.tokens, finishReason: q.finish ?? 'length', text: q.stream?.text }));
  }

  private choose(out: PassOutput, row: number, q: Sequence, s: GenerationSettings, rng: Rng): number {
    if ('nextTokens' in out) return out.nextTokens[row];
    return chooseToken(out.logits, row, this.model.config.vocabSize, [...q.prompt, ...q.tokens], s, rng);
  }

  // ------------------------------------------------------------------------------------------------ beam search

  /**
   * Hugging Face's beam search: every prompt is expanded to num_beams rows (beam scores 0, -1e9, ...), each step
   * ranks log_softmax + repetition penalty + beam score over num_beams x vocab and keeps the top
   * max(2, 1 + #eos) x num_beams candidates; eos candidates ranked below num_beams are dropped, the others become
   * finished hypotheses; at the budget the open beams are added too, and the best-scoring hypothesis is returned.
   */
  private async beamSearch(prompts: readonly (readonly number[])[], s: GenerationSettings): Promise<GenerationResult[]> {
    const n = s.numBeams;
    const vocab = this.model.config.vocabSize;
    const eos = new Set(s.eosTokenIds ?? this.eosTokenIds);
    const budgets = prompts.map((p) => newTokenBudget(s, p.length));
    const hyps = prompts.map((_, b) => new BeamHypotheses(n, s.lengthPenalty, s.earlyStopping, budgets[b]));
    let batches = prompts.map((_, b) => b).filter((b) => budgets[b] > 0);
    if (batches.length > 0) {
      const prompt = promptPass(batches.map((b) => prompts[b]), this.padTokenId);
      const pads = new Map(batches.map((b, i) => [b, prompt.pads[i]]));
      const cache = this.decoder.newCache(batches.length, prompt.width + Math.max(...batches.map((b) => budgets[b])));
      const first = await this.decoder.run(cache, prompt.pass, 'logits');
      if (!('logits' in first)) throw new Error('unreachable');
      // The prompt pass ran once per prompt; its cache and logits are repeated for the beams.
      const expand = batches.flatMap((_, i) => Array.from({ length: n }, () => i));
      cache.selectRows(expand);
      let logits: Float32Array = new Float32Array(expand.length * vocab);
      expand.forEach((i, row) => logits.set(first.logits.subarray(i * vocab, (i + 1) * vocab), row * vocab));
      let beamTokens: number[][] = expand.map(() => []);
      let beamScores = Float64Array.from(expand, (_, row) => (row % n === 0 ? 0 : -1e9));
      const keepCandidates = Math.max(2, 1 + eos.size) * n;
      for (let generated = 1; ; generated++) {
        const rows: number[] = [];
        const nextTokens: number[][] = [];
        const nextScores: number[] = [];
        const stillOpen: number[] = [];
        batches.forEach((b, g) => {
          const candidates = new Float64Array(n * vocab);
          for (let j = 0; j < n; j++) {
            const row = g * n + j;
            const scores = logSoftmax(logits.subarray(row * vocab, (row + 1) * vocab));
            applyRepetitionPenalty(scores, [...prompts[b], ...beamTokens[row]], s.repetitionPenalty);
            for (let v = 0; v < vocab; v++) candidates[j * vocab + v] = scores[v] + beamScores[row];
          }
          const top = topIndices(candidates, keepCandidates);
          const next: { row: number; token: number; score: number }[] = [];
          for (let rank = 0; rank < top.length && next.length < n; rank++) {
            const row = g * n + Math.floor(top[rank] / vocab);
            const token = top[rank] % vocab;
            const score = candidates[top[rank]];
            if (eos.has(token)) {
              if (rank < n) hyps[b].add([...beamTokens[row], token], score, generated, true);
            } else next.push({ row, token, score });
          }
          if (next.length < n) throw new TunekitError(`beam search: fewer than ${n} candidates that are not eos (vocabulary ${vocab}); lower num_beams`);
          let done = hyps[b].isDone(candidates[top[0]], generated);
          if (!done && generated >= budgets[b]) {
            for (const beam of next) hyps[b].add([...beamTokens[beam.row], beam.token], beam.score, generated, false);
            done = true;
          }
          if (done) return;
          stillOpen.push(b);
          for (const beam of next) {
            rows.push(beam.row);
            nextTokens.push([...beamTokens[beam.row], beam.token]);
            nextScores.push(beam.score);
          }
        });
        if (stillOpen.length === 0) break;
        cache.selectRows(rows);
        batches = stillOpen;
        beamTokens = nextTokens;
        beamScores = Float64Array.from(nextScores);
        const seqs = rows.map((_, r) => ({ prompt: prompts[batches[Math.floor(r / n)]], tokens: beamTokens[r], pads: pads.get(batches[Math.floor(r / n)])! }));
        const out = await this.decoder.run(cache, stepPass(cache, seqs), 'logits');
        if (!('logits' in out)) throw new Error('unreachable');
        logits = out.logits;
      }
    }
    return prompts.map((_, b) => {
      const best = hyps[b].best();
      const tokenIds = best ? [...best.tokens] : [];
      const answer = best?.endedWithEos ? tokenIds.slice(0, -1) : tokenIds;
      return {
        tokenIds,
        finishReason: best?.endedWithEos ? 'stop' : 'length',
        text: this.tokenizer?.decode(answer, { skipSpecialTokens: s.skipSpecialTokens }),
        score: best?.score,
      };
    });
  }
}


function eosIdsOf(raw: Readonly<Record<string, unknown>>): number[] {
  const value = raw.eos_token_id;
  return (Array.isArray(value) ? value : [value]).filter((id): id is number => typeof id === 'number');
}

function readEosIds(file: string): number[] {
  if (!fs.existsSync(file)) return [];
  try {
    return eosIdsOf(JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>);
  } catch {
    return [];
  }
}

function unique<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}
