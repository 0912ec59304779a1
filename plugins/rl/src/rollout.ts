import * as ort from 'onnxruntime-node';
import type { SessionOptions } from '@tunekit/graph';
import { chooseToken, Decoder, logSoftmax, promptPass, stepPass, type DecoderPass, type KvCache } from '@tunekit/inference';
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
 * Samples completions from the policy as it is now: the inference package's key/value-cached decoder on the tuned
 * model, whose trainable tensors (LoRA A/B, or the base weights when all of them train) are graph inputs fed from the
 * trainer's current values on every pass, so no session is rebuilt between optimizer steps. Batches are left-padded;
 * each row stops on its own (eos, budget) and finished rows leave the batch.
 */
export class PolicySampler {
  private constructor(
    private readonly model: CausalLM,
    private readonly decoder: Decoder,
    private readonly padTokenId: number,
  ) {}

  static async create(model: CausalLM, options: { session: SessionOptions; padTokenId: number }): Promise<PolicySampler> {
    try {
      const decoder = await Decoder.create(model, { intraOpNumThreads: options.session.intraOpNumThreads, backend: options.session.backend });
      return new PolicySampler(model, decoder, options.padTokenId);
    } catch (e) {
      throw new TunekitError(`${model.source}: could not create the rollout decoder session: ${(e as Error).message}`, 1);
    }
  }

  /** Names of the trainable tensors the sampler reads from `values`. */
  get parameterNames(): string[] {
    return this.decoder.parameters.map((p) => p.name);
  }

  /**
   * Samples one completion per prompt with the policy's current `values` (every trainable tensor by name), seeded by
   * `rng`. Results are in prompt order.
   */
  async sample(prompts: readonly (readonly number[])[], values: ReadonlyMap<string, Float32Array>, settings: RolloutSettings, rng: Rng): Promise<Completion[]> {
    if (prompts.some((p) => p.length === 0)) throw new TunekitError('A rollout prompt has no tokens: check the dataset and cutoff_len.');
    // A tensor the trainer does not hold right now (BAdam trains one block at a time) has the model's current value.
    const weights: Record<string, ort.Tensor> = {};
    for (const p of this.decoder.parameters) weights[p.name] = new ort.Tensor('float32', values.get(p.name) ?? this.model.weights.read(p.name), [...p.shape]);

    const eos = new Set(settings.eosTokenIds);
    const choice = { ...settings, doSample: settings.temperature !== 0 };
    const rows: Row[] = prompts.map((prompt, index) => ({ index, prompt, tokens: [], logps: [], pads: 0 }));
    let active = settings.maxNewTokens > 0 ? rows.slice() : [];
    for (const row of rows) if (settings.maxNewTokens <= 0) row.finish = 'length';
    if (active.length) {
      const vocab = this.model.config.vocabSize;
      const width = Math.max(...active.map((r) => r.prompt.length));
      const cache = this.decoder.newCache(active.length, width + settings.maxNewTokens);
      let logits = await this.pass(cache, leftPadded(active, width, this.padTokenId), weights);
      for (;;) {
        const keep: number[] = [];
        active.forEach((row, r) => {
          const token = chooseToken(logits, r, vocab, [...row.prompt, ...row.tokens], choice, rng);
          row.tokens.push(token);
          row.logps.push(logSoftmax(scaled(logits, r, vocab, settings.logitScale))[token]);
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
    const out = await this.decoder.run(cache, pass, 'logits', weights);
    return (out as { logits: Float32Array }).logits;
  }

  release(): Promise<void> {
    return this.decoder.release();
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
