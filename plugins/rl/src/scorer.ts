import { Graph, Session, type HostTensor, type SessionOptions, type Tensor } from '@tunekit/graph';
import { TunekitError } from '@tunekit/kernel';
import { causalLMInputs, tokenLogps, type CausalLM } from '@tunekit/models';
import { gatherMarked, ValueHead } from '@tunekit/plugin-preference';
import { modelFeeds, type ObjectiveContext } from '@tunekit/trainer';
import type { RolloutRows } from './batches';

/** What a forward pass over rollout rows reports. */
export interface ScoredRows {
  /** [rows, width] log-probs in the column layout of RolloutRows (0 outside the completions). */
  readonly logps?: Float32Array;
  /** [rows, width] value-head predictions at every position (PPO's values). */
  readonly values?: Float32Array;
  /** [rows] value head at each row's last token (a reward model's score). */
  readonly scores?: Float32Array;
}

export interface ScorerOptions {
  readonly session: SessionOptions;
  /** Build the base model without its adapters (the reference of a LoRA policy). */
  readonly disableAdapters?: boolean;
  /** Report token log-probs of logits / logitScale. */
  readonly logps?: { readonly logitScale: number };
  /** Report values (every position) and / or scores (last token) from this head. */
  readonly head?: { readonly valueHead: ValueHead; readonly values?: boolean; readonly scores?: boolean };
}

/** [rows, T] per-token log-probs of the completion labels under logits / scale. */
export function scaledTokenLogps(g: Graph, logits: Tensor, labels: Tensor, scale: number): Tensor {
  return tokenLogps(scale === 1 ? logits : g.Div(logits, scale), labels).logps;
}

/**
 * What the policy side of every rollout objective reads and computes: the model inputs, the labels (the sampled
 * tokens), the response mask and the rollout's log-probs as graph inputs, and the policy's forward in training mode
 * (dropout, NEFTune) with its per-token log-probs of the labels at the sampling temperature.
 */
export function policyForward(g: Graph, model: CausalLM, context: ObjectiveContext, logitScale: number) {
  const inputs = causalLMInputs(g);
  const labels = g.input('labels', 'int64', ['batch', 'seq']);
  const mask = g.input('response_mask', 'float32', ['batch', 'seq']);
  const oldLogps = g.input('old_logps', 'float32', ['batch', 'seq']);
  const forward = model.forward(g, inputs, { dropoutSeed: context.dropoutSeed, embeddingNoise: context.embeddingNoise });
  return { inputs, mask, oldLogps, hiddenStates: forward.hiddenStates, logps: scaledTokenLogps(g, forward.logits, labels, logitScale) };
}

/**
 * A forward pass over rollout rows, no gradient: the reference's log-probs, the policy's values at rollout time, a
 * reward model's scores. The model's trainable tensors (and the head's) are graph inputs fed from `values` on each
 * run; a frozen model has none.
 */
export class RowScorer {
  private constructor(
    private readonly session: Session,
    private readonly parameters: readonly { name: string; shape: readonly number[]; initial: () => Float32Array }[],
    private readonly outputs: readonly ('logps' | 'values' | 'scores')[],
  ) {}

  static async create(model: CausalLM, options: ScorerOptions): Promise<RowScorer> {
    const g = new Graph('rollout-scores');
    const inputs = causalLMInputs(g);
    const { logits, hiddenStates } = model.forward(g, inputs, { disableAdapters: options.disableAdapters });
    const outputs: ('logps' | 'values' | 'scores')[] = [];
    if (options.logps) {
      const labels = g.input('labels', 'int64', ['batch', 'seq']);
      g.output(scaledTokenLogps(g, logits, labels, options.logps.logitScale), 'logps');
      outputs.push('logps');
    }
    const own: { name: string; shape: readonly number[]; initial: () => Float32Array }[] = [];
    if (options.head) {
      const { weight, bias } = options.head.valueHead.parameters(g);
      own.push(weight, bias);
      if (options.head.values) {
        g.output(g.Reshape(ValueHead.scores(g.Reshape(hiddenStates, [-1, model.config.hiddenSize]), weight.tensor, bias.tensor), g.Shape(inputs.inputIds)), 'values');
        outputs.push('values');
      }
      if (options.head.scores) {
        const last = g.input('last_token_mask', 'float32', ['batch', 'seq']);
        g.output(ValueHead.scores(gatherMarked(hiddenStates, last), weight.tensor, bias.tensor), 'scores');
        outputs.push('scores');
      }
    }
    if (!outputs.length) throw new TunekitError('A rollout scorer with nothing to report.', 1);
    const parameters = [...model.trainableParameters(g), ...own];
    return new RowScorer(await Session.create(g, options.session), parameters, outputs);
  }

  /** Runs over `rows` with the trainable tensors' `values` (a tensor missing there has its starting value). */
  async run(rows: RolloutRows, values: ReadonlyMap<string, Float32Array> = new Map()): Promise<ScoredRows> {
    const { labels, ...feeds } = modelFeeds(rows.batch);
    const all: Record<string, HostTensor> = { ...feeds };
    if (this.outputs.includes('logps')) all.labels = labels;
    if (this.outputs.includes('scores')) all.last_token_mask = rows.lastTokenFeed();
    for (const p of this.parameters) all[p.name] = { dtype: 'float32', dims: [...p.shape], data: values.get(p.name) ?? p.initial() };
    const out = await this.session.run(all);
    const pick = (name: string) => (this.outputs.includes(name as never) ? (out[name].data as Float32Array) : undefined);
    return { logps: pick('logps'), values: pick('values'), scores: pick('scores') };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
