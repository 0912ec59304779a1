import { quantizationSettings as settingsOf } from '@tunekit/models';
import { nullToUndefined, readNumber, z, type ConfigIssue, type DependencyContainer, type OptionGroup, type ResolvedConfig } from '@tunekit/kernel';

export const name = '@tunekit/plugin-quantization';

/** LLaMA-Factory's QuantizationMethod values; tunekit quantizes on the fly as bitsandbytes does and builds no other. */
export const QUANTIZATION_METHODS = ['bitsandbytes', 'hqq', 'eetq'] as const;

/** What the trainer passes to `@tunekit/models`' `quantize(model, ...)` for a config, or undefined without quantization_bit. */
export function quantizationSettings(config: ResolvedConfig): { bits: 4 | 8; type: 'nf4' | 'fp4'; blockSize: number } | undefined {
  return settingsOf(config.quantization_bit, config.quantization_type);
}

/** LLaMA-Factory's rules for a quantized base, and what tunekit does not build. */
export function checkQuantization(config: ResolvedConfig, report: (issue: ConfigIssue) => void): void {
  const bits = config.quantization_bit;
  if (bits === undefined || bits === null) {
    for (const key of ['double_quantization'] as const) {
      if (config[key] === true) report({ key, message: `${key} has no effect without quantization_bit. Remove it, or set quantization_bit: 4.` });
    }
    return;
  }
  const tuning = config.finetuning_type ?? 'lora';
  if (tuning !== 'lora') {
    report({
      key: 'quantization_bit',
      message: `quantization_bit is ${String(bits)} but finetuning_type is ${String(tuning)}: a quantized base only trains adapters (QLoRA), as in LLaMA-Factory. Set finetuning_type: lora, or remove quantization_bit.`,
    });
  }
  const method = config.quantization_method ?? 'bitsandbytes';
  if (method !== 'bitsandbytes') {
    report({
      key: 'quantization_method',
      message: `quantization_method ${String(method)} is not supported: tunekit quantizes the base on the fly the way bitsandbytes does (blockwise absmax; nf4 / fp4 for 4 bits). Set quantization_method: bitsandbytes.`,
    });
  }
  if (config.double_quantization === true) {
    report({
      key: 'double_quantization',
      message: 'double_quantization (quantizing the block scales themselves) is not built in tunekit: its block scales stay float32 (0.5 bit per weight at block 64). Set double_quantization: false.',
    });
  }
  if (config.pissa_init === true) {
    report({ key: 'pissa_init', message: 'PiSSA initialisation on a quantized base is not supported (LLaMA-Factory asks for scripts/pissa_init.py first). Remove pissa_init or quantization_bit.' });
  }
  if (config.create_new_adapter === true) {
    report({ key: 'create_new_adapter', message: 'create_new_adapter cannot merge adapters into a quantized base (LLaMA-Factory refuses this too). Remove create_new_adapter or quantization_bit.' });
  }
  const adapters = config.adapter_name_or_path;
  if (Array.isArray(adapters) && adapters.length > 1) {
    report({ key: 'adapter_name_or_path', message: 'a quantized base takes a single adapter (LLaMA-Factory refuses several too): merge them first with tunekit export, or remove quantization_bit.' });
  }
}

export const options: OptionGroup[] = [
  {
    group: 'quantization',
    shape: {
      quantization_bit: z
        .preprocess(readNumber, z.union([z.literal(4), z.literal(8)], { error: 'only 4-bit or 8-bit quantization is accepted' }).optional())
        .describe(
          'quantize the frozen base to 4 or 8 bits (QLoRA): the linear weights of the decoder layers (not embeddings, norms or lm_head) are stored blockwise (an absmax per 64 weights) and dequantized before each matmul; needs finetuning_type: lora.',
        ),
      quantization_method: z
        .preprocess(nullToUndefined, z.enum(QUANTIZATION_METHODS).default('bitsandbytes'))
        .describe('how the base is quantized on the fly: bitsandbytes (tunekit\'s own blockwise absmax quantization in the same formats); hqq and eetq are not supported.'),
      quantization_type: z
        .preprocess(nullToUndefined, z.enum(['nf4', 'fp4']).default('nf4'))
        .describe('4-bit code book: nf4 (the 16 NormalFloat values of QLoRA) or fp4 (bitsandbytes\' FP4 values), scaled by each block\'s absmax. 8 bits are symmetric absmax int8.'),
      double_quantization: z
        .preprocess(nullToUndefined, z.boolean().optional())
        .describe('quantize the block scales too (bitsandbytes; LLaMA-Factory\'s default is true). Not built: tunekit keeps float32 block scales, 0.5 bit per weight more; only false is accepted.'),
      quantization_device_map: z
        .preprocess(nullToUndefined, z.literal('auto').optional())
        .describe('LLaMA-Factory: device map of a 4-bit model at inference; tunekit runs a model on one device, so it has no effect.'),
    },
    check: checkQuantization,
  },
];

/** The plugin owns the keys and their checks; the trainer applies `quantizationSettings` with `@tunekit/models`' `quantize`. */
export function register(_container: DependencyContainer): void {
  // No extension point: quantization is a step of model loading, not a choice among contributions.
}
