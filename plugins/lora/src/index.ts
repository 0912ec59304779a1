import * as fs from 'node:fs';
import * as os from 'node:os';
import * as nodePath from 'node:path';
import { contribute, inject, injectable, NotBuiltError, readList, RUN_CONFIG, TunekitError, TUNER, z, type DependencyContainer, type OptionGroup, type ResolvedConfig, type TunableModel, type Tuner } from '@tunekit/kernel';
import {
  initPissa,
  isPissaInit,
  LoraAdapter,
  pissaInitName,
  pissaToLora,
  type CausalLM,
  type LinearWrapper,
  type LoraConfig,
} from '@tunekit/models';

export const name = '@tunekit/plugin-lora';

export const options: OptionGroup[] = [
  {
    group: 'lora',
    shape: {
      lora_rank: z.number().int().min(1).default(8).describe('rank r of the LoRA matrices'),
      lora_alpha: z.number().positive().optional().describe('LoRA scaling numerator alpha (default: 2 * lora_rank)'),
      lora_dropout: z.number().min(0).lt(1).default(0).describe('dropout on the LoRA input'),
      lora_target: z.preprocess(readList, z.array(z.string()).min(1)).default(['all']).describe('modules that get LoRA: all (every linear layer but lm_head) or names like q_proj,v_proj'),
      additional_target: z.preprocess(readList, z.array(z.string()).optional()).describe('modules trained in full beside LoRA and saved with the adapter'),
      use_rslora: z.boolean().default(false).describe('rank-stabilised scaling alpha / sqrt(r)'),
      use_dora: z.boolean().default(false).describe('weight-decomposed LoRA (DoRA)'),
      pissa_init: z.boolean().default(false).describe('initialise the adapter from the principal singular vectors of W (PiSSA)'),
      pissa_iter: z.number().int().default(16).describe('fast-SVD iterations for PiSSA; -1 = exact SVD'),
      pissa_convert: z.boolean().default(false).describe('convert a PiSSA adapter to a plain LoRA one when saving'),
      loraplus_lr_ratio: z.number().positive().optional().describe('LoRA+: learning rate of B = ratio * learning rate of A'),
      loraplus_lr_embedding: z.number().positive().default(1e-6).describe('LoRA+: learning rate of embedding adapters'),
      create_new_adapter: z.boolean().default(false).describe('with adapter_name_or_path: merge the given adapters and train a new one'),
    },
    check(config, report) {
      if (config.finetuning_type !== 'lora') return;
      // PiSSA with a base-model reference (dpo, kto) is refused by @tunekit/plugin-preference, which knows the losses.
      if (config.pissa_init === true && config.pissa_convert === true && config.use_dora === true) {
        report({ key: 'pissa_convert', message: 'a DoRA adapter is not linear in B A, so PiSSA conversion to plain LoRA cannot express it; remove pissa_convert or use_dora.' });
      }
      if (Array.isArray(config.additional_target) && config.additional_target.length) {
        report({ key: 'additional_target', message: 'training extra modules beside LoRA (modules_to_save) is not built yet in this version of tunekit; remove additional_target.' });
      }
    },
  },
];

function adapterPaths(config: ResolvedConfig): string[] {
  const value = config.adapter_name_or_path;
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value.map(String) : String(value).split(',').map((item) => item.trim()).filter(Boolean);
}

/** DoRA's norm and PiSSA's SVD read the base weight W. */
function readsBaseWeight(config: LoraConfig): boolean {
  return config.useDora === true || isPissaInit(config.initLoraWeights);
}

function asCausalLM(model: TunableModel): CausalLM {
  if (!('linearSpecs' in model)) throw new TunekitError('The lora tuner needs a tunekit causal LM (@tunekit/models).', 1);
  return model as unknown as CausalLM;
}

/**
 * LoRA as LLaMA-Factory sets it up: adapters given in adapter_name_or_path are applied frozen (merged), except the
 * last one, which resumes training unless create_new_adapter; otherwise a new adapter is initialised as PEFT does.
 */
@injectable()
export class LoraTuner implements Tuner<LinearWrapper> {
  readonly addsAdapters = true;
  private trained?: LoraAdapter;
  /** The PiSSA adapter as initialized, kept for pissa_convert. */
  private pissaInitial?: LoraAdapter;
  private residualDir?: string;
  private residualFiles = 0;

  constructor(@inject(RUN_CONFIG) private readonly config: ResolvedConfig) {}

  /**
   * The adapter's settings for a new adapter, from the config. `lora_target: all` becomes the explicit list of the
   * model's linear module names except lm_head, as LLaMA-Factory writes it (older PEFT versions lack 'all-linear').
   */
  loraConfig(model: CausalLM): LoraConfig {
    const r = Number(this.config.lora_rank);
    const targets = this.config.lora_target as string[];
    const all = [...new Set(model.linearSpecs().map((spec) => spec.name.split('.').pop()!))].filter((m) => m !== 'lm_head');
    return {
      r,
      alpha: Number(this.config.lora_alpha ?? 2 * r),
      useRslora: this.config.use_rslora === true,
      targetModules: targets.length === 1 && targets[0] === 'all' ? all : targets,
      dropout: Number(this.config.lora_dropout ?? 0),
      useDora: this.config.use_dora === true,
      initLoraWeights: this.config.pissa_init === true ? pissaInitName(Number(this.config.pissa_iter ?? 16)) : true,
      baseModel: typeof this.config.model_name_or_path === 'string' ? this.config.model_name_or_path : undefined,
    };
  }

  apply(tunable: TunableModel<LinearWrapper>): void {
    const model = asCausalLM(tunable);
    const paths = adapterPaths(this.config);
    const training = this.config.do_train === true;
    const resumeLast = training && !this.config.create_new_adapter && paths.length > 0;
    const frozen = resumeLast ? paths.slice(0, -1) : paths;
    const stack: LoraAdapter[] = [];
    const push = (adapter: LoraAdapter, trainable: boolean) => {
      // LLaMA-Factory merges earlier adapters into W, and DoRA's norm and PiSSA's SVD read that merged W; here
      // earlier adapters stay separate wrappers, so an adapter that reads W must come first.
      if (stack.length && readsBaseWeight(adapter.config)) throw new NotBuiltError('DoRA or PiSSA on top of other adapters (adapter_name_or_path)');
      // Frozen adapters get a graph prefix: PEFT names repeat from adapter to adapter, and only the trained one keeps
      // its plain PEFT names (they are the names it is saved and resumed under).
      adapter.apply(model, { trainable, graphPrefix: trainable ? undefined : `frozen${stack.length}.` });
      stack.push(adapter);
    };
    for (const path of frozen) push(this.load(path, model), false);
    if (!training) return;
    const config = this.loraConfig(model);
    if (stack.length && readsBaseWeight(config) && !resumeLast) throw new NotBuiltError('DoRA or PiSSA on top of other adapters (adapter_name_or_path)');
    if (resumeLast) this.trained = this.load(paths[paths.length - 1], model);
    else if (isPissaInit(config.initLoraWeights)) this.trained = this.pissaInitial = initPissa(model, config, this.pissaOptions());
    else this.trained = LoraAdapter.init(model, config, this.seed);
    push(this.trained, true);
  }

  /**
   * LoRA+: B matrices learn `loraplus_lr_ratio` times faster than A. LLaMA-Factory puts every 1-D trainable tensor in
   * the B groups too, which for LoRA means DoRA's magnitude.
   */
  lrScale(parameterName: string): number {
    const ratio = this.config.loraplus_lr_ratio;
    const inB = parameterName.includes('.lora_B.') || parameterName.endsWith('.lora_magnitude_vector');
    return typeof ratio === 'number' && inB ? ratio : 1;
  }

  /**
   * Writes the trained adapter as PEFT does. A PiSSA adapter is saved as trained (it fits the residual base, and its
   * init_lora_weights makes PEFT rebuild that base on load); with pissa_convert, LLaMA-Factory's layout is added:
   * `pissa_init/` (the initial adapter) and `pissa_converted/` (a rank-2r plain LoRA for the original base).
   */
  saveAdapter(dir: string, trained: ReadonlyMap<string, Float32Array>): void {
    if (!this.trained) throw new TunekitError('The lora tuner has no adapter to save: it was applied without do_train.', 1);
    const adapter = this.trained.withValues(trained);
    adapter.save(dir);
    if (this.pissaInitial && this.config.pissa_convert === true) {
      this.pissaInitial.withConfig({ ...this.pissaInitial.config, initLoraWeights: true }).save(nodePath.join(dir, 'pissa_init'));
      pissaToLora(adapter, this.pissaInitial).save(nodePath.join(dir, 'pissa_converted'));
    }
  }

  private get seed(): number {
    return Number(this.config.seed ?? 42);
  }

  /**
   * Loads a PEFT adapter. A PiSSA one (init_lora_weights 'pissa...') rebuilds its residual base first, as PEFT does
   * on load: the same SVD (and, for the randomized one, the same seed) gives back the base it was trained on.
   */
  private load(dir: string, model: CausalLM): LoraAdapter {
    const adapter = LoraAdapter.load(dir, model);
    if (isPissaInit(adapter.config.initLoraWeights)) initPissa(model, adapter.config, this.pissaOptions());
    return adapter;
  }

  /** The residual base weights go to a per-run temp dir (the filesystem sessions link their external data from). */
  private pissaOptions(): { seed: number; residualFile: string } {
    if (!this.residualDir) {
      const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'tunekit-pissa-'));
      process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
      this.residualDir = dir;
    }
    return { seed: this.seed, residualFile: nodePath.join(this.residualDir, `residual-${this.residualFiles++}.safetensors`) };
  }
}

export function register(container: DependencyContainer): void {
  contribute(container, TUNER, {
    id: 'lora',
    description: 'low-rank adapters on linear layers (rsLoRA, LoRA+, DoRA, PiSSA); PEFT-compatible adapter files',
    provider: { useClass: LoraTuner },
  });
}
