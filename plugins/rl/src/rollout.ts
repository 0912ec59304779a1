import * as fs from 'node:fs';
import * as ort from 'onnxruntime-node';
import { compileToFile, ortSessionOptions, type SessionOptions } from '@tunekit/graph';
import { applyRepetitionPenalty, applyTemperature, applyTopK, applyTopP, buildDecoderGraph, KvCache, logSoftmax, promptPass, sampleIndex, softmax, stepPass, type DecoderPass } from '@tunekit/inference';
import { TunekitError } from '@tunekit/kernel';
import type { CausalLM, Rng } from '@tunekit/models';

/** How completions are sampled (the run's generation keys). */
export interface RolloutSettings {
  /** Most tokens per completion (max_new_tokens, or GRPO's max_completion_length). */
  readonly maxNewTokens: number;
  /** Sampling temperature; 0 is greedy. */
  readonly temperature: number;
  readonly topP: number;
  readonly topK: number;
  readonly repetitionPenalty: number;
  /** Ids that end a completion (kept as its last token). */
  readonly eosTokenIds: readonly number[];
  /**
   * The log-probs of the sampled tokens are taken from logits / logitScale (TRL's GRPO divides by the sampling
   * temperature; PPO reads the model's own distribution, 1).
   */
  readonly logitScale: number;
}

/** One sampled completion. */
export interface Completion {
  readonly promptIds: readonly number[];
  /** The sampled ids, the ending eos included when one ended it. */
  readonly tokenIds: readonly number[];
  /** log p(token) of each sampled id under the policy at sampling time (logits / logitScale). */
  readonly logps: readonly number[];
  readonly finishReason: 'stop' | 'length';
}

interface Row {
  readonly index: number;
  readonly prompt: readonly number[];
  readonly tokens: number[];
  readonly logps: number[];
  pads: number;
  finish?: 'stop' | 'length';
}

/**
 * Samples completions from the policy as it is now: the key/value-cached decoder graph of the tuned model, whose
 * trainable tensors (LoRA A/B, or the base weights when all of them train) are graph inputs fed from the trainer's
 * current values on every pass, so no session is rebuilt between optimizer steps. Batches are left-padded; each row
 * stops on its own (eos, budget) and finished rows leave the batch.
 */
export class PolicySampler {
  private constructor(
    private readonly model: CausalLM,
    private readonly session: ort.InferenceSession,
    private readonly parameters: readonly { name: string; shape: readonly number[] }[],
    private readonly padTokenId: number,
    private readonly tempDir: string | undefined,
  ) {}

  static async create(model: CausalLM, options: { session: SessionOptions; padTokenId: number }): Promise<PolicySampler> {
    const graph = buildDecoderGraph(model);
    const parameters = model.trainableParameters(graph).map((p) => ({ name: p.name, shape: [...p.shape] }));
    const sessionOptions: SessionOptions = { ...options.session, disableCse: false };
    const compiled = compileToFile(graph, sessionOptions);
    try {
      const session = await ort.InferenceSession.create(compiled.modelPath, ortSessionOptions(sessionOptions));
      return new PolicySampler(model, session, parameters, options.padTokenId, compiled.tempDir);
    } catch (e) {
      if (compiled.tempDir) fs.rmSync(compiled.tempDir, { recursive: true, force: true });
      throw new TunekitError(`${model.source}: could not create the rollout decoder session: ${(e as Error).message}`, 1);
    }
  }

  /** Names of the trainable tensors the sampler reads from `values`. */
  get parameterNames(): string[] {
    return this.parameters.map((p) => p.name);
  }

  /**
   * Samples one completion per prompt with the policy's current `values` (every trainable tensor by name), seeded by
   * `rng`. Results are in prompt order.
   */
  async sample(prompts: readonly (readonly number[])[], values: ReadonlyMap<string, Float32Array>, settings: RolloutSettings, rng: Rng): Promise<Completion[]> {
    if (prompts.some((p) => p.length === 0)) throw new TunekitError('A rollout prompt has no tokens: check the dataset and cutoff_len.');
    // A tensor the trainer does not hold right now (BAdam trains one block at a time) has the model's current value.
    const weights: Record<string, ort.Tensor> = {};
    for (const p of this.parameters) weights[p.name] = new ort.Tensor('float32', values.get(p.name) ?? this.model.weights.read(p.name), [...p.shape]);

    const eos = new Set(settings.eosTokenIds);
    const rows: Row[] = prompts.map((prompt, index) => ({ index, prompt, tokens: [], logps: [], pads: 0 }));
    let active = settings.maxNewTokens > 0 ? rows.slice() : [];
    for (const row of rows) if (settings.maxNewTokens <= 0) row.finish = 'length';
    if (active.length) {
      const c = this.model.config;
      const width = Math.max(...active.map((r) => r.prompt.length));
      const cache = new KvCache(c.numLayers, c.numKvHeads, c.headDim, active.length, width + settings.maxNewTokens, 'fetched');
      let logits = await this.pass(cache, leftPadded(active, width, this.padTokenId), weights);
      for (;;) {
        const keep: number[] = [];
        active.forEach((row, r) => {
          const token = this.choose(logits, r, row, settings, rng);
          row.tokens.push(token);
          row.logps.push(logSoftmax(scaled(logits, r, c.vocabSize, settings.logitScale))[token]);
          if (eos.has(token)) row.finish = 'stop';
          else if (row.tokens.length >= settings.maxNewTokens) row.finish = 'length';
          if (!row.finish) keep.push(r);
        });
        if (!keep.length) break;
        if (keep.length < active.length) {
          cache.selectRows(keep);
          active = keep.map((r) => active[r]);
        }
        logits = await this.pass(cache, stepPass(cache, active), weights);
      }
    }
    return rows.map((row) => ({ promptIds: row.prompt, tokenIds: row.tokens, logps: row.logps, finishReason: row.finish ?? 'length' }));
  }

  private async pass(cache: KvCache, pass: DecoderPass, weights: Record<string, ort.Tensor>): Promise<Float32Array> {
    const rows = cache.rows;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', pass.inputIds, [rows, pass.seq]),
      attention_mask: new ort.Tensor('int64', pass.attentionMask, [rows, cache.length + pass.seq]),
      position_ids: new ort.Tensor('int64', pass.positionIds, [rows, pass.seq]),
      ...cache.pastFeeds(),
      ...weights,
    };
    const fetches: Record<string, ort.Tensor | null> = { ...cache.presentFetches(pass.seq), logits: null };
    const out = (await this.session.run(feeds, fetches)) as Record<string, ort.Tensor>;
    cache.accept(out, pass.seq);
    return out.logits.data as Float32Array;
  }

  private choose(logits: Float32Array, r: number, row: Row, s: RolloutSettings, rng: Rng): number {
    const vocab = this.model.config.vocabSize;
    const scores = Float64Array.from(logits.subarray(r * vocab, (r + 1) * vocab));
    applyRepetitionPenalty(scores, [...row.prompt, ...row.tokens], s.repetitionPenalty);
    if (s.temperature === 0) {
      let best = 0;
      for (let i = 1; i < vocab; i++) if (scores[i] > scores[best]) best = i;
      return best;
    }
    applyTemperature(scores, s.temperature);
    applyTopK(scores, s.topK);
    applyTopP(scores, s.topP);
    return sampleIndex(softmax(scores), rng.uniform());
  }

  async release(): Promise<void> {
    await this.session.release();
    if (this.tempDir) fs.rmSync(this.tempDir, { recursive: true, force: true });
  }
}

/** Row `r` of [rows, vocab] logits divided by `scale`. */
function scaled(logits: Float32Array, r: number, vocab: number, scale: number): Float64Array {
  const out = Float64Array.from(logits.subarray(r * vocab, (r + 1) * vocab));
  if (scale !== 1) for (let i = 0; i < out.length; i++) out[i] /= scale;
  return out;
}

/** The prompt pass of `rows`, left-padded to `width`; each row learns its padding. */
function leftPadded(rows: Row[], width: number, padId: number): DecoderPass {
  const { pass, pads } = promptPass(rows.map((row) => row.prompt), padId, width);
  rows.forEach((row, r) => (row.pads = pads[r]));
  return pass;
}
