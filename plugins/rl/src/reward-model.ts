import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SessionOptions } from '@tunekit/graph';
import { listOf, TunekitError, type ResolvedConfig } from '@tunekit/kernel';
import { CausalLM, LoraAdapter } from '@tunekit/models';
import { ValueHead } from '@tunekit/plugin-preference';
import type { RolloutRows } from './batches';
import { RowScorer } from './scorer';

/** What PPO scores its completions with (LLaMA-Factory's reward_model_type). */
export interface RewardModel {
  readonly description: string;
  /** One score per row: the reward model's value head at the row's last token, or the endpoint's score. */
  score(rows: RolloutRows, texts: readonly string[]): Promise<number[]>;
  release(): Promise<void>;
}

function headOf(dir: string, hiddenSize: number, key: string): ValueHead {
  const head = ValueHead.load(dir, hiddenSize);
  if (!head) throw new TunekitError(`${key}: ${dir} has no value_head.safetensors. Point it at the output of a stage rm run (its adapter or model folder).`);
  return head;
}

/** A reward model run forward in a session of its own: its value head read at each row's last token. */
class ScoringRewardModel implements RewardModel {
  constructor(
    private readonly scorer: RowScorer,
    readonly description: string,
  ) {}

  async score(rows: RolloutRows): Promise<number[]> {
    return Array.from((await this.scorer.run(rows)).scores!);
  }

  release(): Promise<void> {
    return this.scorer.release();
  }
}

/**
 * LLaMA-Factory's api reward model: POST {model, messages} with the query + response texts to `url`, answered
 * {"scores": [...]}, one per text. Waits `timeoutSeconds`; every failure names the key and the endpoint.
 */
export class ApiRewardModel implements RewardModel {
  readonly description: string;

  constructor(
    private readonly url: string,
    private readonly timeoutSeconds: number,
  ) {
    this.description = `the reward API at ${url}`;
  }

  async score(_rows: RolloutRows, texts: readonly string[]): Promise<number[]> {
    let response: Response;
    try {
      response = await fetch(this.url, {
        method: 'POST',
        headers: { Authorization: 'Bearer EMPTY', 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: 'model', messages: texts }),
        signal: AbortSignal.timeout(this.timeoutSeconds * 1000),
      });
    } catch (error) {
      const timedOut = (error as Error).name === 'TimeoutError';
      throw new TunekitError(
        timedOut
          ? `reward_model: the reward API at ${this.url} did not answer within ${this.timeoutSeconds} s. Check the server, or raise reward_api_timeout.`
          : `reward_model: could not reach the reward API at ${this.url}: ${(error as Error).message}. Check the URL and that the server runs.`,
        1,
      );
    }
    if (!response.ok) throw new TunekitError(`reward_model: the reward API at ${this.url} answered HTTP ${response.status}: ${(await response.text()).slice(0, 200)}`, 1);
    let body: unknown;
    try {
      body = await response.json();
    } catch {
      throw new TunekitError(`reward_model: the reward API at ${this.url} did not answer JSON; it must answer {"scores": [one number per message]}.`, 1);
    }
    const scores = (body as { scores?: unknown }).scores;
    if (!Array.isArray(scores) || scores.length !== texts.length || scores.some((s) => typeof s !== 'number' || !Number.isFinite(s))) {
      throw new TunekitError(`reward_model: the reward API at ${this.url} must answer {"scores": [...]} with ${texts.length} finite numbers (one per message); it answered ${JSON.stringify(body).slice(0, 200)}.`, 1);
    }
    return scores as number[];
  }

  async release(): Promise<void> {}
}

/**
 * The reward model a ppo run selects: `lora`, an rm adapter (with its value_head.safetensors) on the policy's own
 * base weights (the same weight source, so no second copy is read); `full`, a model folder (with
 * reward_model_adapters applied) and its value head; `api`, an HTTP endpoint.
 */
export async function setUpRewardModel(config: ResolvedConfig, policy: CausalLM, session: SessionOptions, log: (line: string) => void): Promise<RewardModel> {
  const type = String(config.reward_model_type ?? 'lora');
  const where = config.reward_model;
  if (typeof where !== 'string') throw new TunekitError('stage ppo needs a reward_model: an rm adapter folder (reward_model_type: lora), a model folder (full) or a URL (api).');
  if (type === 'api') {
    if (!/^https?:\/\//.test(where)) throw new TunekitError(`reward_model_type is api but reward_model (${where}) is not an http(s) URL.`);
    return new ApiRewardModel(where, typeof config.reward_api_timeout === 'number' ? config.reward_api_timeout : 60);
  }
  if (type === 'lora') {
    if (!fs.existsSync(path.join(where, 'adapter_config.json'))) {
      throw new TunekitError(`reward_model: ${where} is not an rm adapter folder (no adapter_config.json). With reward_model_type: lora it is the output_dir of a stage rm run with finetuning_type: lora; for a model folder set reward_model_type: full.`);
    }
    const rewardModel = new CausalLM(policy.config, policy.weights, `${policy.source} with the reward adapter ${where}`);
    LoraAdapter.load(where, rewardModel).apply(rewardModel, { trainable: false });
    const head = headOf(where, policy.config.hiddenSize, 'reward_model');
    log(`Reward model: the rm adapter ${where} on the policy's base weights, with its value head.`);
    return new ScoringRewardModel(await RowScorer.create(rewardModel, { session, head: { valueHead: head, scores: true } }), `the rm adapter ${where}`);
  }
  if (type === 'full') {
    if (!fs.existsSync(path.join(where, 'config.json'))) {
      throw new TunekitError(`reward_model: ${where} is not a model folder (no config.json). With reward_model_type: full it is a model folder (a stage rm run with finetuning_type: full, or a base with reward_model_adapters); for an rm adapter set reward_model_type: lora.`);
    }
    const rewardModel = CausalLM.load(where, { log });
    const adapters = listOf(config.reward_model_adapters);
    for (const adapter of adapters) LoraAdapter.load(adapter, rewardModel).apply(rewardModel, { trainable: false });
    const headDir = adapters.at(-1) ?? where;
    const head = headOf(headDir, rewardModel.config.hiddenSize, adapters.length ? 'reward_model_adapters' : 'reward_model');
    log(`Reward model: ${where}${adapters.length ? ` with the adapters ${adapters.join(', ')}` : ''}, in a session of its own.`);
    return new ScoringRewardModel(await RowScorer.create(rewardModel, { session, head: { valueHead: head, scores: true } }), `the model ${where}`);
  }
  throw new TunekitError(`reward_model_type must be lora, full or api; got ${JSON.stringify(type)}.`);
}
