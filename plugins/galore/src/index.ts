import { contribute, INFERENCE_BACKEND, OPTIMIZER, readList, resolveContribution, resolveToken, RUN_CONFIG, z, type ConfigIssue, type DependencyContainer, type OptionGroup, type ResolvedConfig } from '@tunekit/kernel';
import { galoreAdamW, type GaloreSettings } from './optimizer';
import { PROJECTION_TYPES, type ProjectionType } from './projector';

export { galoreAdamW, isGaloreTarget, type GaloreSettings } from './optimizer';
export * from './projector';
export { MatrixProducts } from './products';

export const name = '@tunekit/plugin-galore';

/** The optim values whose update GaLoreAdamW replaces (torch's AdamW and the Trainer's aliases of it). */
const ADAMW_IDS = ['adamw_torch', 'adamw_torch_fused', 'adamw_hf', 'adamw_apex_fused', 'adamw_anyprecision'];
/** The other optim values LLaMA-Factory pairs with GaLore (GaLoreAdamW8bit, GaLoreAdafactor). */
const OTHER_GALORE_OPTIMS = ['adamw_bnb_8bit', 'adamw_8bit', 'paged_adamw_8bit', 'adafactor'];

/** LLaMA-Factory's rules for use_galore, and what tunekit does not build. */
export function checkGalore(config: ResolvedConfig, report: (issue: ConfigIssue) => void): void {
  if (config.use_galore !== true) return;
  const tuning = String(config.finetuning_type ?? 'lora');
  if (tuning !== 'full') {
    report({ key: 'use_galore', message: `use_galore trains full parameters but finetuning_type is ${tuning}: set finetuning_type: full (LLaMA-Factory refuses GaLore with LoRA too).` });
  }
  if (config.use_badam === true) report({ key: 'use_galore', message: 'use_galore and use_badam are both true: they are two ways to save optimizer memory and cannot be combined. Keep one.' });
  const optim = String(config.optim ?? 'adamw_torch');
  if (OTHER_GALORE_OPTIMS.includes(optim)) {
    report({ key: 'optim', message: `GaLore with optim ${optim} (GaLoreAdamW8bit / GaLoreAdafactor) is not built in tunekit: set optim: adamw_torch.` });
  } else if (!ADAMW_IDS.includes(optim)) {
    report({ key: 'optim', message: `GaLore works with optim adamw_torch (LLaMA-Factory also knows adamw_8bit and adafactor), not ${optim}. Set optim: adamw_torch.` });
  }
  if (config.galore_layerwise === true && Number(config.gradient_accumulation_steps ?? 1) !== 1) {
    report({ key: 'galore_layerwise', message: 'Per-layer GaLore does not support gradient accumulation (each parameter steps during backward): set gradient_accumulation_steps: 1, or galore_layerwise: false.' });
  }
}

export const options: OptionGroup[] = [
  {
    group: 'galore',
    shape: {
      use_galore: z.boolean().default(false).describe('train full parameters with GaLore: Adam moments in a low-rank projection of each linear weight\'s gradient (needs finetuning_type: full)'),
      galore_target: z
        .preprocess(readList, z.array(z.string().min(1)).min(1))
        .default(['all'])
        .describe('linear modules whose weights GaLore projects: all (every linear layer but lm_head) or names like q_proj,v_proj, comma-separated'),
      galore_rank: z.number().int().min(1).default(16).describe('rank of the projected gradient'),
      galore_update_interval: z.number().int().min(1).default(200).describe('optimizer steps between recomputing the projections (from the gradient\'s SVD)'),
      galore_scale: z.number().positive().default(0.25).describe('factor on the update projected back to full rank'),
      galore_proj_type: z.enum(PROJECTION_TYPES).default('std').describe('which side is projected: std (the longer side away), reverse_std, right, left, full (both)'),
      galore_layerwise: z
        .boolean()
        .default(false)
        .describe('layer-wise GaLore: LLaMA-Factory steps each parameter during backward, so max_grad_norm does not apply and gradient accumulation is refused; tunekit takes the same step (its memory use is the same as without)'),
    },
    check: checkGalore,
  },
];

/** GaLore's settings from a config (AdamW's betas and epsilon from the Trainer's adam_* keys). */
export function galoreSettings(config: ResolvedConfig): GaloreSettings {
  return {
    targets: (config.galore_target as string[] | undefined) ?? ['all'],
    rank: Number(config.galore_rank ?? 16),
    updateInterval: Number(config.galore_update_interval ?? 200),
    scale: Number(config.galore_scale ?? 0.25),
    projType: (config.galore_proj_type ?? 'std') as ProjectionType,
    betas: [Number(config.adam_beta1 ?? 0.9), Number(config.adam_beta2 ?? 0.999)],
    eps: Number(config.adam_epsilon ?? 1e-8),
    layerwise: config.galore_layerwise === true,
  };
}

/** Contributes the `galore` optimizer, engaged by use_galore: true in place of `optim`. */
export function register(container: DependencyContainer): void {
  contribute(container, OPTIMIZER, {
    engagedBy: (config) => config.use_galore === true,
    id: 'galore',
    description: 'GaLoreAdamW: AdamW with moments in a low-rank projection of each linear weight\'s gradient (use_galore)',
    provider: {
      useFactory: (run) => {
        const config = resolveToken(run, RUN_CONFIG);
        const backend = resolveContribution(run, INFERENCE_BACKEND, String(config.backend ?? 'cpu')).sessionOptions();
        return galoreAdamW(galoreSettings(config), { backend });
      },
    },
  });
}
