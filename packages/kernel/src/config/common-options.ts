import { z } from 'zod';
import { nullToUndefined, readBoolean, readList, readNumber } from './readers';
import { DATA_MIXER, INFERENCE_BACKEND, LR_SCHEDULER, OPTIMIZER, STAGE, TEMPLATE, TUNER, type ResolvedConfig } from '../extension-points';
import type { ConfigIssue, OptionGroup } from './option-group';

/**
 * The configuration keys the kernel owns: LLaMA-Factory's model, data, generation and export arguments, Hugging Face
 * `TrainingArguments` plus LLaMA-Factory's training switches, and tunekit's own `plugins`. Keys owned by plugins
 * (LoRA, freeze, quantization, GaLore, BAdam, preference, PPO, GRPO, interleave probabilities) are declared by those
 * plugins and listed in `catalog.ts`.
 *
 * Values are read in the forms LLaMA-Factory accepts in YAML: comma-separated strings or lists for list keys, JSON
 * strings or mappings for dict keys, numbers written as strings, and `null` meaning "the default".
 *
 * Keys that ask for something tunekit cannot do (DeepSpeed, FSDP, vLLM, Unsloth, multimodal inputs, hub uploads...)
 * are declared so an LLaMA-Factory YAML is recognised, and each group's `check` reports them when they are set to
 * anything but a harmless value. Performance-only hints (bf16, flash_attn: sdpa, ddp_timeout, worker counts...) are
 * accepted and ignored: tunekit computes in float32 on its own graphs.
 */

// ---------------------------------------------------------------------------------------------------------------
// Readers: turn the YAML / command-line spellings into the value the schema checks (readers.ts, plus these).

/** A mapping, or a JSON string of one (Python-style `{'a': True}` is accepted too, as LLaMA-Factory's docs write it). */
function readMapping(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const trimmed = value.trim();
  if (!trimmed.startsWith('{')) return value;
  try {
    return JSON.parse(trimmed);
  } catch {
    const pythonic = trimmed
      .replace(/'/g, '"')
      .replace(/\bTrue\b/g, 'true')
      .replace(/\bFalse\b/g, 'false')
      .replace(/\bNone\b/g, 'null');
    try {
      return JSON.parse(pythonic);
    } catch {
      return value;
    }
  }
}

/** `fsdp`/`sharded_ddp`: false or '' → [], true → ['full_shard'], 'full_shard auto_wrap' → two options. */
function readOptionList(value: unknown): unknown {
  if (value === false || value === null || value === undefined) return [];
  if (value === true) return ['full_shard'];
  if (typeof value === 'string') return value.split(/[\s,]+/).filter((item) => item.length > 0);
  return value;
}

// ---------------------------------------------------------------------------------------------------------------
// Schema builders. Every key has a default or is optional; YAML `null` on a defaulted key yields the default.

function withDefault<S extends z.ZodType>(schema: S, value: z.output<S>, description: string) {
  return z.preprocess(nullToUndefined, schema.default(value as never)).describe(description);
}

function optional<S extends z.ZodType>(schema: S, description: string) {
  return schema.nullish().describe(description);
}

const booleanValue = () => z.preprocess(readBoolean, z.boolean());
const numberValue = (schema: z.ZodNumber = z.number()) => z.preprocess(readNumber, schema);
const listValue = () => z.preprocess(readList, z.array(z.string().min(1)));
const mappingValue = () => z.preprocess(readMapping, z.record(z.string(), z.unknown()));
const pathOrMapping = () => z.preprocess(readMapping, z.union([z.string().min(1), z.record(z.string(), z.unknown())]));
/** Hugging Face step intervals: a whole number of steps, or a fraction of the total steps when in (0, 1). */
const intervalValue = (min: 'positive' | 'non-negative') =>
  z.preprocess(
    readNumber,
    (min === 'positive' ? z.number().gt(0) : z.number().min(0)).refine((value) => value <= 1 || Number.isInteger(value), {
      message: 'a value above 1 must be a whole number of steps (a value in (0, 1) is a fraction of the total training steps)',
    }),
  );

const flag = (value: boolean, description: string) => withDefault(booleanValue(), value, description);
const optionalFlag = (description: string) => optional(booleanValue(), description);
const num = (schema: z.ZodNumber, value: number, description: string) => withDefault(numberValue(schema), value, description);
const optionalNum = (schema: z.ZodNumber, description: string) => optional(numberValue(schema), description);
const int = () => z.number().int();
const text = (value: string, description: string) => withDefault(z.string(), value, description);
const optionalText = (description: string) => optional(z.string().min(1), description);
const choice = <const T extends readonly [string, ...string[]]>(values: T, value: T[number], description: string) =>
  withDefault(z.enum(values), value, description);
const optionalChoice = <const T extends readonly [string, ...string[]]>(values: T, description: string) => optional(z.enum(values), description);
const optionalList = (description: string) => optional(listValue(), description);
/** A key whose value is an id at an extension point: a plain string, checked against the registry. */
const id = (value: string, description: string) => withDefault(z.string().min(1), value, description);

const LOG_LEVELS = ['detail', 'debug', 'info', 'warning', 'error', 'critical', 'passive'] as const;
const INTERVAL_STRATEGIES = ['no', 'steps', 'epoch'] as const;

// ---------------------------------------------------------------------------------------------------------------
// Helpers for the checks.

function show(value: unknown): string {
  const shown = JSON.stringify(value);
  if (shown === undefined) return String(value);
  return shown.length > 80 ? `${shown.slice(0, 77)}...` : shown;
}

function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

function isSet(value: unknown): boolean {
  return value !== undefined && value !== null && !(Array.isArray(value) && value.length === 0) && value !== '';
}

/** A key tunekit declares only to recognise it, and why it cannot honour it. */
interface Unsupported {
  readonly keys: readonly string[];
  /** Why tunekit cannot do what the key asks; `{key}` and `{value}` are filled in. */
  readonly why: string;
  /** What to do instead; defaults to removing the key. */
  readonly fix?: string;
  /** Values that are harmless besides the key's default (e.g. `flash_attn: sdpa`). */
  readonly accepts?: (value: unknown) => boolean;
}

function unsupportedCheck(shape: z.ZodRawShape, table: readonly Unsupported[]) {
  const defaults = new Map<string, unknown>();
  for (const entry of table) {
    for (const key of entry.keys) {
      const schema = shape[key];
      if (!schema) throw new Error(`unsupported-key table names '${key}', which the group does not declare`);
      defaults.set(key, z.safeParse(schema, undefined).data);
    }
  }
  return (config: ResolvedConfig, report: (issue: ConfigIssue) => void): void => {
    for (const entry of table) {
      for (const key of entry.keys) {
        const value = config[key];
        if (value === undefined || value === null || sameValue(value, defaults.get(key)) || entry.accepts?.(value)) continue;
        const fill = (sentence: string) => sentence.replace(/\{key\}/g, key).replace(/\{value\}/g, show(value));
        const fix = entry.fix ? fill(entry.fix) : `Remove ${key} from the config.`;
        report({ key, message: `${key} is set to ${show(value)}, which tunekit does not support: ${fill(entry.why)} ${fix}` });
      }
    }
  };
}

function allChecks(...checks: ((config: ResolvedConfig, report: (issue: ConfigIssue) => void) => void)[]) {
  return (config: ResolvedConfig, report: (issue: ConfigIssue) => void): void => {
    for (const check of checks) check(config, report);
  };
}

const HUB = 'tunekit does not log in to model hubs (Hugging Face, ModelScope, Modelers) or push models to them.';
const HUB_FIX = 'Remove {key}; upload or download models with the hub\'s own tools.';
const MULTIMODAL = 'tunekit fine-tunes text-only language models and never reads images, videos or audio.';
const VLLM = 'tunekit generates with its own engine and has no vLLM or SGLang engine to configure.';
const DISTRIBUTED = 'tunekit trains in one process on its own compute graphs, so there is nothing to shard, offload or distribute.';
const TRACKERS = 'tunekit has no experiment-tracker integrations; it prints its logs and writes them to output_dir.';

// ---------------------------------------------------------------------------------------------------------------
// model

const modelShape = {
  model_name_or_path: optionalText('Local Hugging Face folder of the base model to fine-tune or run.'),
  adapter_name_or_path: optionalList('Adapter folders to load on top of the base model; several are applied in order.'),
  adapter_folder: optionalText('Folder that holds the adapter weights to load.'),
  cache_dir: optionalText('Where downloaded models are cached.'),
  use_fast_tokenizer: flag(true, 'Use the fast (tokenizers-library) tokenizer.'),
  resize_vocab: flag(false, 'Grow the vocabulary and the embedding matrices to fit added tokens.'),
  split_special_tokens: flag(false, 'Let the tokenizer split special tokens into ordinary pieces instead of keeping them whole.'),
  new_special_tokens: optionalList('Special tokens to add to the tokenizer (comma-separated or a list).'),
  model_revision: text('main', 'Branch, tag or commit of the model repository to load.'),
  low_cpu_mem_usage: flag(true, 'Load the model weights in a memory-saving way.'),
  rope_scaling: optionalChoice(['linear', 'dynamic', 'yarn', 'llama3'], 'RoPE scaling method used to stretch the context window.'),
  flash_attn: choice(['auto', 'disabled', 'sdpa', 'fa2', 'fa3'], 'auto', 'Attention kernel choice; tunekit always uses its own attention graph, so only fa2/fa3 are refused.'),
  shift_attn: flag(false, 'Enable LongLoRA shifted short attention (S^2-Attn).'),
  mixture_of_depths: optionalChoice(['convert', 'load'], 'Convert the model to, or load, a Mixture-of-Depths model.'),
  use_unsloth: flag(false, "Use Unsloth's patched training kernels."),
  use_unsloth_gc: flag(false, "Use Unsloth's gradient checkpointing."),
  enable_liger_kernel: flag(false, 'Use the Liger Triton kernels.'),
  moe_aux_loss_coef: optionalNum(z.number().min(0), 'Weight of the router load-balancing loss of mixture-of-experts models.'),
  disable_gradient_checkpointing: flag(false, 'Turn off gradient checkpointing (more memory, faster backward).'),
  use_reentrant_gc: flag(true, 'Use reentrant gradient checkpointing (a PyTorch detail; no effect in tunekit).'),
  upcast_layernorm: flag(false, 'Keep layer-norm weights in float32 (tunekit always computes in float32).'),
  upcast_lmhead_output: flag(false, 'Compute the lm_head output in float32 (tunekit always computes in float32).'),
  train_from_scratch: flag(false, 'Start from randomly initialised weights instead of the pretrained ones.'),
  infer_backend: choice(['huggingface', 'vllm', 'sglang', 'ktransformers'], 'huggingface', 'Generation engine; tunekit only has its own (the huggingface setting).'),
  offload_folder: text('offload', 'Folder for weights offloaded to disk while loading.'),
  use_cache: flag(true, 'Reuse the key/value cache while generating.'),
  infer_dtype: choice(['auto', 'float16', 'bfloat16', 'float32'], 'auto', 'Weight and activation dtype at inference (tunekit computes in float32).'),
  trust_remote_code: flag(false, "Allow a model repository's own code; tunekit never runs Python model code, so this has no effect."),
  hf_hub_token: optionalText('Hugging Face Hub access token.'),
  ms_hub_token: optionalText('ModelScope Hub access token.'),
  om_hub_token: optionalText('Modelers (OpenMind) Hub access token.'),
  print_param_status: flag(false, 'Print every parameter with its dtype, device and trainable flag (debugging).'),
  vllm_maxlen: num(int().min(1), 4096, 'Longest prompt plus response the vLLM engine accepts.'),
  vllm_gpu_util: num(z.number().gt(0).max(1), 0.7, 'Share of GPU memory the vLLM engine may take.'),
  vllm_enforce_eager: flag(false, 'Run the vLLM engine without CUDA graphs.'),
  vllm_max_lora_rank: num(int().min(1), 32, 'Largest LoRA rank the vLLM engine accepts.'),
  vllm_config: optional(mappingValue(), 'Extra vLLM engine settings (mapping or JSON string).'),
  sglang_maxlen: num(int().min(1), 4096, 'Longest prompt plus response the SGLang engine accepts.'),
  sglang_mem_fraction: num(z.number().gt(0).max(1), 0.7, 'Share of GPU memory the SGLang engine may take.'),
  sglang_tp_size: num(int(), -1, 'Tensor-parallel degree of the SGLang engine (-1: all GPUs).'),
  sglang_config: optional(mappingValue(), 'Extra SGLang engine settings (mapping or JSON string).'),
  sglang_lora_backend: choice(['triton', 'flashinfer'], 'triton', 'Kernel library SGLang uses for LoRA layers.'),
  image_resolution: num(int().min(1), 512, 'Largest side of image inputs, in pixels (older LLaMA-Factory key).'),
  image_max_pixels: num(int().min(1), 768 * 768, 'Most pixels an image input may have.'),
  image_min_pixels: num(int().min(1), 32 * 32, 'Fewest pixels an image input may have.'),
  image_do_pan_and_scan: flag(false, 'Pan-and-scan crops for Gemma 3 image inputs.'),
  crop_to_patches: flag(false, 'Crop images into patches for InternVL.'),
  video_resolution: num(int().min(1), 128, 'Largest side of video frames, in pixels (older LLaMA-Factory key).'),
  video_max_pixels: num(int().min(1), 256 * 256, 'Most pixels a video frame may have.'),
  video_min_pixels: num(int().min(1), 16 * 16, 'Fewest pixels a video frame may have.'),
  video_fps: num(z.number().gt(0), 2, 'Frames sampled per second of video input.'),
  video_maxlen: num(int().min(1), 128, 'Most frames sampled from one video.'),
  use_audio_in_video: flag(false, 'Also feed the audio track of video inputs.'),
  audio_sampling_rate: num(int().min(1), 16000, 'Sampling rate of audio inputs, in Hz.'),
} satisfies z.ZodRawShape;

const modelUnsupported: Unsupported[] = [
  {
    keys: ['infer_backend'],
    why: VLLM,
    fix: 'Remove {key} or set it to huggingface.',
  },
  {
    keys: ['vllm_maxlen', 'vllm_gpu_util'],
    why: `{key} only tunes the vLLM engine; ${VLLM}`,
    // LLaMA-Factory's older defaults (2048 tokens, 0.9 of the memory) are harmless too.
    accepts: (value) => value === 2048 || value === 0.9,
  },
  { keys: ['vllm_enforce_eager', 'vllm_max_lora_rank', 'vllm_config'], why: `{key} only tunes the vLLM engine; ${VLLM}` },
  {
    keys: ['sglang_maxlen', 'sglang_mem_fraction', 'sglang_tp_size', 'sglang_config', 'sglang_lora_backend'],
    why: `{key} only tunes the SGLang engine; ${VLLM}`,
  },
  {
    keys: ['flash_attn'],
    why: 'FlashAttention 2/3 are CUDA kernels for PyTorch; tunekit computes attention in its own graph.',
    fix: 'Set {key} to auto, sdpa or disabled (or remove it).',
    accepts: (value) => value === 'auto' || value === 'sdpa' || value === 'disabled',
  },
  { keys: ['shift_attn'], why: "LongLoRA's shifted short attention is not part of tunekit's attention graph." },
  { keys: ['mixture_of_depths'], why: 'Mixture-of-Depths needs the Python MoD package to rewrite the model; tunekit cannot convert or load such models.' },
  { keys: ['use_unsloth', 'use_unsloth_gc'], why: 'Unsloth patches PyTorch model code; tunekit builds its own graphs, so there is nothing to patch.' },
  { keys: ['enable_liger_kernel'], why: 'Liger kernels are Triton GPU kernels for PyTorch models; tunekit does not run PyTorch.' },
  { keys: ['hf_hub_token', 'ms_hub_token', 'om_hub_token'], why: HUB, fix: HUB_FIX },
  {
    keys: [
      'image_resolution',
      'image_max_pixels',
      'image_min_pixels',
      'image_do_pan_and_scan',
      'crop_to_patches',
      'video_resolution',
      'video_max_pixels',
      'video_min_pixels',
      'video_fps',
      'video_maxlen',
      'use_audio_in_video',
      'audio_sampling_rate',
    ],
    why: MULTIMODAL,
    // LLaMA-Factory's older default for video_maxlen.
    accepts: (value) => value === 64,
  },
];

function checkModel(config: ResolvedConfig, report: (issue: ConfigIssue) => void): void {
  if (!isSet(config.model_name_or_path)) {
    report({
      key: 'model_name_or_path',
      message: 'model_name_or_path is not set: every run needs a base model. Set it to a local Hugging Face model folder (config.json, *.safetensors, tokenizer.json).',
    });
  }
  if (config.split_special_tokens === true && config.use_fast_tokenizer !== false) {
    report({
      key: 'split_special_tokens',
      message: 'split_special_tokens is true while use_fast_tokenizer is true: splitting special tokens only works with the slow tokenizer. Set use_fast_tokenizer: false, or drop split_special_tokens.',
    });
  }
  if (isSet(config.adapter_name_or_path) && config.finetuning_type !== 'lora') {
    report({
      key: 'adapter_name_or_path',
      message: `adapter_name_or_path is ${show(config.adapter_name_or_path)} but finetuning_type is ${show(config.finetuning_type)}: adapters can only be loaded for LoRA. Set finetuning_type: lora, or merge the adapter into the model first (tunekit export) and remove adapter_name_or_path.`,
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// data

const dataShape = {
  template: optionalText('Chat template that turns conversations into tokens (e.g. llama3, qwen, alpaca).'),
  dataset: optionalList('Training dataset names from dataset_info.json, comma-separated or a list.'),
  eval_dataset: optionalList('Evaluation dataset names from dataset_info.json, comma-separated or a list.'),
  dataset_dir: text('data', 'Folder holding dataset_info.json and the local dataset files.'),
  media_dir: optionalText('Folder of the images, videos or audio files datasets refer to (defaults to dataset_dir).'),
  cutoff_len: num(int().min(1), 2048, 'Longest tokenized example; longer ones are truncated.'),
  train_on_prompt: flag(false, 'Also compute the loss on prompt tokens, not only on responses.'),
  mask_history: flag(false, 'Compute the loss on the last turn of a conversation only.'),
  streaming: flag(false, 'Read datasets lazily instead of loading them whole.'),
  buffer_size: num(int().min(1), 16384, 'Examples held in the shuffle buffer when streaming.'),
  mix_strategy: id('concat', 'How several datasets are combined: concat, interleave_under, interleave_over, interleave_once (a data-mixer id).'),
  overwrite_cache: flag(false, 'Re-tokenize datasets even when a cached result exists.'),
  preprocessing_batch_size: num(int().min(1), 1000, 'Examples tokenized per batch during preprocessing.'),
  preprocessing_num_workers: optionalNum(int().min(1), 'Worker processes for preprocessing (a speed hint).'),
  max_samples: optionalNum(int().min(1), 'Keep at most this many examples of each dataset (for quick trials).'),
  eval_num_beams: optionalNum(int().min(1), 'Beam count used when evaluation generates text.'),
  ignore_pad_token_for_loss: flag(true, 'Leave padding tokens out of the loss.'),
  val_size: num(
    z.number().min(0).refine((value) => value < 1 || Number.isInteger(value), {
      message: 'val_size is a fraction in [0, 1) or a whole number of examples',
    }),
    0,
    'Held-out validation split: a fraction in [0, 1) or a number of examples.',
  ),
  eval_on_each_dataset: flag(false, 'Report evaluation metrics for each evaluation dataset separately.'),
  packing: optionalFlag('Pack several short examples into one sequence (on by default for pre-training).'),
  neat_packing: flag(false, 'Pack examples without letting them attend to each other.'),
  tool_format: optionalText('Format of function-calling examples (e.g. default, glm4, llama3, mistral, qwen).'),
  tokenized_path: optionalText('Where tokenized datasets are saved, or loaded from if the folder exists.'),
  default_system: optionalText("System message that replaces the template's default one."),
  enable_thinking: flag(true, 'Keep the thinking (reasoning) part in templates of reasoning models.'),
} satisfies z.ZodRawShape;

function checkData(config: ResolvedConfig, report: (issue: ConfigIssue) => void): void {
  const valSize = typeof config.val_size === 'number' ? config.val_size : 0;
  if (valSize > 1e-6 && !isSet(config.dataset)) {
    report({ key: 'val_size', message: `val_size is ${show(valSize)} but no dataset is set to split it from. Set dataset, or remove val_size.` });
  }
  if (valSize > 1e-6 && isSet(config.eval_dataset)) {
    report({
      key: 'val_size',
      message: `val_size is ${show(valSize)} and eval_dataset is ${show(config.eval_dataset)}: use one source of evaluation data. Remove val_size or eval_dataset.`,
    });
  }
  if (config.streaming === true && valSize > 1e-6 && valSize < 1) {
    report({
      key: 'val_size',
      message: `val_size is the fraction ${show(valSize)} while streaming is true: a streamed dataset has no known length. Give val_size as a number of examples (e.g. 1000) or set streaming: false.`,
    });
  }
  if (config.streaming === true && isSet(config.max_samples)) {
    report({
      key: 'max_samples',
      message: `max_samples is ${show(config.max_samples)} while streaming is true; the two cannot be combined. Remove max_samples or set streaming: false.`,
    });
  }
  if (config.streaming === true && isSet(config.tokenized_path)) {
    report({
      key: 'tokenized_path',
      message: `tokenized_path is ${show(config.tokenized_path)} while streaming is true: a streamed dataset cannot be saved to disk. Set streaming: false or remove tokenized_path.`,
    });
  }
  if (config.mask_history === true && config.train_on_prompt === true) {
    report({
      key: 'mask_history',
      message: 'mask_history and train_on_prompt are both true: the first drops earlier turns from the loss, the second adds prompts to it. Set one of them to false.',
    });
  }
  if (config.stage !== undefined && config.stage !== 'sft') {
    for (const key of ['neat_packing', 'train_on_prompt', 'mask_history']) {
      if (config[key] === true) {
        report({ key, message: `${key} is true but stage is ${show(config.stage)}; it only applies to supervised fine-tuning. Set ${key}: false or stage: sft.` });
      }
    }
  }
  if (isSet(config.media_dir)) {
    report({ key: 'media_dir', message: `media_dir is set to ${show(config.media_dir)}, which tunekit does not support: ${MULTIMODAL} Remove media_dir from the config.` });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// training: Hugging Face TrainingArguments / Seq2SeqTrainingArguments and LLaMA-Factory's training switches

const trainingShape = {
  // what to run
  stage: id('sft', 'Training stage (recipe): pt, sft, rm, ppo, dpo, kto, grpo.'),
  finetuning_type: id('lora', 'What is trained: lora, freeze or full (a tuner id).'),
  do_train: flag(false, 'Run training.'),
  do_eval: flag(false, 'Run evaluation on the evaluation data.'),
  do_predict: flag(false, 'Generate predictions for the evaluation data and save them.'),
  // output
  output_dir: optionalText('Folder for checkpoints, the final weights, logs and predictions.'),
  overwrite_output_dir: flag(false, 'Reuse a non-empty output_dir instead of resuming from its last checkpoint.'),
  resume_from_checkpoint: optional(
    z.preprocess(readBoolean, z.union([z.boolean(), z.string().min(1)])),
    'Checkpoint folder to resume from, or true to resume from the last checkpoint in output_dir.',
  ),
  plot_loss: flag(false, 'Save a plot of the training (and evaluation) loss curves.'),
  // batches and length of training
  per_device_train_batch_size: num(int().min(1), 8, 'Training examples per device per forward pass.'),
  per_device_eval_batch_size: num(int().min(1), 8, 'Evaluation examples per device per forward pass.'),
  per_gpu_train_batch_size: optionalNum(int().min(1), 'Deprecated name of per_device_train_batch_size.'),
  per_gpu_eval_batch_size: optionalNum(int().min(1), 'Deprecated name of per_device_eval_batch_size.'),
  gradient_accumulation_steps: num(int().min(1), 1, 'Forward/backward passes accumulated before each optimizer step.'),
  eval_accumulation_steps: optionalNum(int().min(1), 'Evaluation batches gathered before predictions are moved off the device.'),
  num_train_epochs: num(z.number().min(0), 3, 'Passes over the training data (may be fractional).'),
  max_steps: num(int().min(-1), -1, 'Total optimizer steps; a positive value overrides num_train_epochs (-1: unset).'),
  auto_find_batch_size: flag(false, 'Halve the batch size and retry when memory runs out.'),
  // optimizer and schedule
  optim: id('adamw_torch', 'Optimizer id, e.g. adamw_torch, sgd, adafactor.'),
  optim_args: optionalText('Extra optimizer settings as "key=value,key=value".'),
  optim_target_modules: optionalList('Modules an optimizer that targets specific modules (GaLore, APOLLO) applies to.'),
  adafactor: flag(false, 'Deprecated switch for optim: adafactor.'),
  learning_rate: num(z.number().min(0), 5e-5, 'Peak learning rate.'),
  weight_decay: num(z.number().min(0), 0, 'Decoupled weight decay (not applied to biases and norm weights).'),
  adam_beta1: num(z.number().min(0).lt(1), 0.9, 'AdamW decay rate of the first moment.'),
  adam_beta2: num(z.number().min(0).lt(1), 0.999, 'AdamW decay rate of the second moment.'),
  adam_epsilon: num(z.number().min(0), 1e-8, 'AdamW term added to the denominator for numerical stability.'),
  max_grad_norm: num(z.number().min(0), 1, 'Clip gradients to this global L2 norm (0 disables clipping).'),
  label_smoothing_factor: num(z.number().min(0).lt(1), 0, 'Label smoothing of the cross-entropy loss.'),
  lr_scheduler_type: id('linear', 'Learning-rate schedule id, e.g. linear, cosine, constant_with_warmup.'),
  lr_scheduler_kwargs: withDefault(mappingValue(), {}, 'Extra scheduler settings (mapping or JSON string), e.g. {"num_cycles": 2}.'),
  warmup_ratio: num(z.number().min(0).max(1), 0, 'Fraction of the total steps spent warming the learning rate up from 0.'),
  warmup_steps: withDefault(intervalValue('non-negative'), 0, 'Warm-up length in steps (overrides warmup_ratio when above 0).'),
  neftune_noise_alpha: optionalNum(z.number().min(0), 'Scale of the NEFTune noise added to input embeddings while training.'),
  // evaluation
  eval_strategy: choice(INTERVAL_STRATEGIES, 'no', 'When to evaluate during training: no, steps or epoch.'),
  evaluation_strategy: optionalChoice(INTERVAL_STRATEGIES, 'Deprecated name of eval_strategy.'),
  eval_steps: optional(intervalValue('positive'), 'Evaluate every this many steps (or this fraction of the total) when eval_strategy is steps; defaults to logging_steps.'),
  eval_delay: num(z.number().min(0), 0, 'Epochs or steps to wait before the first evaluation.'),
  eval_on_start: flag(false, 'Evaluate once before training starts.'),
  prediction_loss_only: flag(false, 'Return only the loss when evaluating or predicting.'),
  predict_with_generate: flag(false, 'Generate text during evaluation/prediction to compute generation metrics.'),
  generation_max_length: optionalNum(int().min(1), 'Longest generated sequence during evaluation (defaults to cutoff_len).'),
  generation_num_beams: optionalNum(int().min(1), 'Beam count during evaluation generation.'),
  generation_config: optionalText('Path of a generation_config.json used during evaluation.'),
  compute_accuracy: flag(false, 'Report token-level accuracy when evaluating.'),
  batch_eval_metrics: flag(false, 'Compute metrics batch by batch instead of at the end of evaluation.'),
  include_inputs_for_metrics: flag(false, 'Pass the inputs to the metric computation.'),
  eval_do_concat_batches: flag(true, 'Concatenate evaluation batches before computing metrics.'),
  eval_use_gather_object: flag(false, 'Gather evaluation objects across processes (no effect in one process).'),
  load_best_model_at_end: flag(false, 'Keep the best checkpoint by metric_for_best_model at the end of training.'),
  metric_for_best_model: optionalText('Metric that picks the best checkpoint (default: loss).'),
  greater_is_better: optionalFlag('Whether a larger metric_for_best_model is better (default: false for loss metrics).'),
  early_stopping_steps: optionalNum(int().min(1), 'Stop after this many evaluations without improvement of metric_for_best_model.'),
  // logging
  log_level: choice(LOG_LEVELS, 'passive', 'Log verbosity of the main process.'),
  log_level_replica: choice(LOG_LEVELS, 'warning', 'Log verbosity of the other processes.'),
  log_on_each_node: flag(true, 'Log on every node rather than only the main one.'),
  logging_dir: optionalText('Folder for training logs (default: inside output_dir).'),
  logging_strategy: choice(INTERVAL_STRATEGIES, 'steps', 'When to log: no, steps or epoch.'),
  logging_first_step: flag(false, 'Also log the very first step.'),
  logging_steps: withDefault(intervalValue('non-negative'), 500, 'Log every this many steps (or this fraction of the total).'),
  logging_nan_inf_filter: flag(true, 'Leave NaN/inf losses out of the logged average.'),
  report_to: optionalList('Experiment trackers to report to; tunekit only accepts none.'),
  run_name: optionalText('Name of the run in logs.'),
  disable_tqdm: optionalFlag('Hide progress bars.'),
  include_tokens_per_second: flag(false, 'Report training throughput in tokens per second per device.'),
  include_num_input_tokens_seen: flag(false, 'Track how many input tokens training has consumed.'),
  include_effective_tokens_per_second: flag(false, 'Report throughput counting non-padding tokens only.'),
  skip_memory_metrics: flag(true, 'Skip the memory profiling report.'),
  use_swanlab: flag(false, 'Report to SwanLab.'),
  swanlab_project: text('llamafactory', 'SwanLab project name.'),
  swanlab_workspace: optionalText('SwanLab workspace.'),
  swanlab_run_name: optionalText('SwanLab experiment name.'),
  swanlab_mode: choice(['cloud', 'local'], 'cloud', 'SwanLab mode.'),
  swanlab_api_key: optionalText('SwanLab API key.'),
  swanlab_logdir: optionalText('SwanLab log folder.'),
  swanlab_lark_webhook_url: optionalText('Lark webhook that SwanLab notifies.'),
  swanlab_lark_secret: optionalText('Secret of the Lark webhook.'),
  // saving
  save_strategy: choice(['no', 'steps', 'epoch', 'best'], 'steps', 'When to save checkpoints: no, steps, epoch or best.'),
  save_steps: withDefault(intervalValue('positive'), 500, 'Save every this many steps (or this fraction of the total).'),
  save_total_limit: optionalNum(int().min(0), 'Keep at most this many checkpoints, deleting the oldest.'),
  save_safetensors: flag(true, 'Save weights as .safetensors (tunekit only writes safetensors).'),
  save_on_each_node: flag(false, 'Save checkpoints on every node in multi-node runs.'),
  save_only_model: flag(false, 'Save only the weights in checkpoints, without optimizer and scheduler state (cannot resume).'),
  restore_callback_states_from_checkpoint: flag(false, 'Restore callback state (e.g. early stopping) when resuming.'),
  ignore_data_skip: flag(false, 'When resuming, do not skip the batches the checkpoint already saw.'),
  // data loading
  dataloader_drop_last: flag(false, 'Drop the last incomplete batch.'),
  dataloader_num_workers: num(int().min(0), 0, 'Worker processes that load batches (a speed hint).'),
  dataloader_prefetch_factor: optionalNum(int().min(1), 'Batches each loader worker prepares ahead (a speed hint).'),
  dataloader_pin_memory: flag(true, 'Pin host memory for faster device copies (a speed hint).'),
  dataloader_persistent_workers: flag(false, 'Keep loader workers alive between epochs (a speed hint).'),
  group_by_length: flag(false, 'Batch examples of similar length together to reduce padding.'),
  length_column_name: text('length', 'Dataset column with precomputed lengths for group_by_length.'),
  remove_unused_columns: flag(true, 'Drop dataset columns the model does not take.'),
  label_names: optionalList('Input fields that hold the labels.'),
  sortish_sampler: flag(false, 'Sample batches roughly sorted by length.'),
  disable_shuffling: flag(false, 'Keep the training data in its original order.'),
  // reproducibility and devices
  seed: num(int().min(0), 42, 'Random seed for initialisation and shuffling.'),
  data_seed: optionalNum(int().min(0), 'Separate seed for data sampling (default: seed).'),
  full_determinism: flag(false, 'Make every operation deterministic, at a speed cost.'),
  backend: text('cpu', "Where graphs run: an inference-backend id ('cpu', 'cuda'). A backend that cannot run here is an error, never a silent fallback."),
  use_cpu: flag(false, 'Train on the CPU even when a GPU backend is available.'),
  no_cuda: flag(false, 'Deprecated name of use_cpu.'),
  use_mps_device: flag(false, 'Deprecated switch for Apple GPUs; ignored.'),
  // precision: tunekit computes in float32 on the CPU, so these are accepted and ignored
  bf16: flag(false, 'bfloat16 mixed precision (accepted; tunekit computes in float32).'),
  fp16: flag(false, 'float16 mixed precision (accepted; tunekit computes in float32).'),
  pure_bf16: flag(false, 'Train purely in bfloat16 without mixed precision (accepted; tunekit computes in float32).'),
  fp16_opt_level: choice(['O0', 'O1', 'O2', 'O3'], 'O1', 'Apex AMP optimisation level (ignored).'),
  half_precision_backend: choice(['auto', 'apex', 'cpu_amp', 'cuda_amp'], 'auto', 'Mixed-precision backend (ignored).'),
  fp16_backend: choice(['auto', 'apex', 'cpu_amp', 'cuda_amp'], 'auto', 'Deprecated name of half_precision_backend (ignored).'),
  bf16_full_eval: flag(false, 'Evaluate fully in bfloat16 (accepted; tunekit computes in float32).'),
  fp16_full_eval: flag(false, 'Evaluate fully in float16 (accepted; tunekit computes in float32).'),
  tf32: optionalFlag('Allow TF32 matrix multiplies on Ampere GPUs (ignored).'),
  // memory and speed hints
  gradient_checkpointing: flag(false, 'Recompute activations in the backward pass to save memory.'),
  gradient_checkpointing_kwargs: optional(mappingValue(), 'Extra gradient-checkpointing settings (mapping or JSON string).'),
  torch_empty_cache_steps: optionalNum(int().min(1), 'Free cached device memory every this many steps (a memory hint).'),
  torch_compile: flag(false, 'Compile the model with torch.compile (a speed hint; ignored).'),
  torch_compile_backend: optionalText('torch.compile backend (ignored).'),
  torch_compile_mode: optionalText('torch.compile mode (ignored).'),
  torchdynamo: optionalText('Deprecated torch.compile backend switch (ignored).'),
  jit_mode_eval: flag(false, 'Trace the model with PyTorch JIT for evaluation (a speed hint; ignored).'),
  use_ipex: flag(false, 'Use Intel Extension for PyTorch (a speed hint; ignored).'),
  use_legacy_prediction_loop: flag(false, "Use Hugging Face's old prediction loop (no effect in tunekit)."),
  // distributed training: single-process no-ops, accepted
  local_rank: num(int(), -1, 'Process rank set by distributed launchers (-1: not distributed).'),
  ddp_backend: optionalChoice(['nccl', 'gloo', 'mpi', 'ccl', 'hccl', 'cncl', 'mccl'], 'Distributed communication backend (no effect in one process).'),
  ddp_timeout: num(int().min(1), 1800, 'Timeout of distributed operations in seconds (no effect in one process).'),
  ddp_find_unused_parameters: optionalFlag('DDP search for unused parameters (no effect in one process).'),
  ddp_bucket_cap_mb: optionalNum(int().min(1), 'DDP gradient bucket size in MB (no effect in one process).'),
  ddp_broadcast_buffers: optionalFlag('DDP buffer broadcasting (no effect in one process).'),
  dispatch_batches: optionalFlag('Deprecated Accelerate batch dispatching (no effect in one process).'),
  split_batches: optionalFlag('Deprecated Accelerate batch splitting (no effect in one process).'),
  // unsupported: distributed engines, TPUs, hubs, Ray, LLaMA-Factory extras
  deepspeed: optional(pathOrMapping(), 'DeepSpeed config file or mapping.'),
  fsdp: withDefault(z.preprocess(readOptionList, z.array(z.string())), [], 'PyTorch FSDP options, e.g. "full_shard auto_wrap".'),
  fsdp_config: optional(pathOrMapping(), 'FSDP config file or mapping.'),
  fsdp_min_num_params: num(int().min(0), 0, 'Deprecated FSDP auto-wrap parameter threshold.'),
  fsdp_transformer_layer_cls_to_wrap: optionalText('Deprecated FSDP layer class to wrap.'),
  sharded_ddp: withDefault(z.preprocess(readOptionList, z.array(z.string())), [], 'FairScale sharded DDP options (removed from recent transformers).'),
  accelerator_config: optional(pathOrMapping(), 'Hugging Face Accelerate settings (file or mapping).'),
  mp_parameters: text('', 'SageMaker model-parallel settings.'),
  tpu_num_cores: optionalNum(int().min(1), 'TPU cores to train on.'),
  tpu_metrics_debug: flag(false, 'Deprecated: print TPU debug metrics.'),
  debug: withDefault(listValue(), [], 'Debug features, e.g. underflow_overflow.'),
  past_index: num(int().min(-1), -1, 'Output index of past hidden states for models with memory (Transformer-XL, XLNet).'),
  push_to_hub: flag(false, 'Upload the model to the Hugging Face Hub on every save.'),
  hub_model_id: optionalText('Hub repository that output_dir is synchronised with.'),
  hub_strategy: choice(['end', 'every_save', 'checkpoint', 'all_checkpoints'], 'every_save', 'What is uploaded to the Hub, and when.'),
  hub_token: optionalText('Token for pushing to the Hub.'),
  hub_private_repo: flag(false, 'Create the Hub repository as private.'),
  hub_always_push: flag(false, 'Push even when the previous push has not finished.'),
  push_to_hub_model_id: optionalText('Deprecated name of hub_model_id.'),
  push_to_hub_organization: optionalText('Deprecated: organisation to push to.'),
  push_to_hub_token: optionalText('Deprecated name of hub_token.'),
  ray_scope: text('last', 'Which checkpoints Ray hyperparameter search compares.'),
  ray_run_name: optionalText('Ray training run name.'),
  ray_storage_path: text('./saves', 'Where Ray training stores results.'),
  ray_storage_filesystem: optionalChoice(['s3', 'gs', 'gcs'], 'Remote filesystem for Ray results.'),
  ray_num_workers: num(int().min(1), 1, 'Ray training workers.'),
  resources_per_worker: withDefault(mappingValue(), { GPU: 1 }, 'Resources of each Ray worker (mapping or JSON string).'),
  placement_strategy: choice(['SPREAD', 'PACK', 'STRICT_SPREAD', 'STRICT_PACK'], 'PACK', 'Ray placement strategy.'),
  ray_init_kwargs: optional(mappingValue(), 'Arguments to ray.init (mapping or JSON string).'),
  use_mca: flag(false, 'Train through Megatron-Core (MCA).'),
  use_llama_pro: flag(false, 'Train only the blocks added by LLaMA Pro block expansion.'),
  use_adam_mini: flag(false, 'Use the Adam-mini optimizer.'),
  train_mm_proj_only: flag(false, 'Train only the multimodal projector of a vision-language model.'),
  use_liger_kernel: flag(false, "Hugging Face's switch for the Liger Triton kernels."),
} satisfies z.ZodRawShape;

const trainingUnsupported: Unsupported[] = [
  { keys: ['deepspeed'], why: `DeepSpeed is a PyTorch engine; ${DISTRIBUTED}` },
  { keys: ['fsdp', 'fsdp_config', 'fsdp_min_num_params', 'fsdp_transformer_layer_cls_to_wrap'], why: `{key} configures PyTorch FSDP; ${DISTRIBUTED}` },
  { keys: ['sharded_ddp'], why: `{key} configures FairScale sharded DDP; ${DISTRIBUTED}` },
  { keys: ['accelerator_config'], why: `{key} configures Hugging Face Accelerate, which tunekit does not use; ${DISTRIBUTED}` },
  { keys: ['mp_parameters'], why: `{key} configures SageMaker model parallelism; ${DISTRIBUTED}` },
  { keys: ['tpu_num_cores', 'tpu_metrics_debug'], why: 'tunekit does not run on TPUs.' },
  { keys: ['debug'], why: 'the underflow/overflow and TPU debug hooks attach to PyTorch modules; tunekit has no such hooks.' },
  { keys: ['past_index'], why: 'Llama-family models carry no memory state between steps, so there is no past output to feed back.' },
  {
    keys: ['push_to_hub', 'hub_model_id', 'hub_strategy', 'hub_token', 'hub_private_repo', 'hub_always_push', 'push_to_hub_model_id', 'push_to_hub_organization', 'push_to_hub_token'],
    why: HUB,
    fix: HUB_FIX,
  },
  {
    keys: ['ray_scope', 'ray_run_name', 'ray_storage_path', 'ray_storage_filesystem', 'ray_num_workers', 'resources_per_worker', 'placement_strategy', 'ray_init_kwargs'],
    why: 'Ray is a Python cluster framework; tunekit runs each job in one local process.',
  },
  {
    keys: ['report_to'],
    why: TRACKERS,
    fix: 'Set report_to: none (or remove it).',
    accepts: (value) => Array.isArray(value) && value.every((entry) => entry === 'none' || entry === 'all'),
  },
  {
    keys: [
      'use_swanlab',
      'swanlab_project',
      'swanlab_workspace',
      'swanlab_run_name',
      'swanlab_mode',
      'swanlab_api_key',
      'swanlab_logdir',
      'swanlab_lark_webhook_url',
      'swanlab_lark_secret',
    ],
    why: TRACKERS,
  },
  {
    keys: ['save_safetensors'],
    why: 'tunekit writes weights only as .safetensors, never as PyTorch pickles (.bin).',
    fix: 'Remove {key} (or set it to true).',
  },
  { keys: ['use_mca'], why: `Megatron-Core is a PyTorch engine; ${DISTRIBUTED}` },
  { keys: ['use_llama_pro'], why: "LLaMA Pro needs a model whose blocks were expanded by LLaMA-Factory's llama_pro.py script; tunekit has no block-expansion training." },
  { keys: ['use_adam_mini'], why: 'Adam-mini is a PyTorch optimizer package that tunekit does not provide.', fix: 'Remove {key} and choose an optimizer with optim (e.g. adamw_torch).' },
  { keys: ['train_mm_proj_only'], why: MULTIMODAL },
  { keys: ['use_liger_kernel'], why: 'Liger kernels are Triton GPU kernels for PyTorch models; tunekit does not run PyTorch.' },
];

function numberOr(value: unknown, fallback: number): number {
  return typeof value === 'number' ? value : fallback;
}

function hasEvalData(config: ResolvedConfig): boolean {
  return isSet(config.eval_dataset) || numberOr(config.val_size, 0) > 1e-6;
}

function checkTraining(config: ResolvedConfig, report: (issue: ConfigIssue) => void): void {
  for (const key of ['use_cpu', 'no_cuda'] as const) {
    if (config[key] === true && config.backend !== 'cpu') {
      report({ key, message: `${key}: true asks for the CPU, but backend is '${String(config.backend)}'. Remove ${key} or set backend: cpu.` });
    }
  }
  const stage = config.stage;
  const evalStrategy = config.eval_strategy;
  const saveStrategy = config.save_strategy;
  const loggingSteps = numberOr(config.logging_steps, 500);

  if (config.fp16 === true && config.bf16 === true) {
    report({ key: 'fp16', message: 'fp16 and bf16 are both true; at most one mixed-precision mode can be on. Set one of them to false (tunekit computes in float32 either way).' });
  }
  if (config.fp16_full_eval === true && config.bf16_full_eval === true) {
    report({ key: 'fp16_full_eval', message: 'fp16_full_eval and bf16_full_eval are both true; at most one can be on. Set one of them to false.' });
  }

  // renamed keys: the runner reads only the new names, so a value under an old name would be lost
  if (isSet(config.evaluation_strategy) && config.evaluation_strategy !== evalStrategy) {
    report({
      key: 'evaluation_strategy',
      message: `evaluation_strategy is ${show(config.evaluation_strategy)} but eval_strategy is ${show(evalStrategy)}: evaluation_strategy is the old name. Rename it to eval_strategy.`,
    });
  }
  for (const [old, current] of [
    ['per_gpu_train_batch_size', 'per_device_train_batch_size'],
    ['per_gpu_eval_batch_size', 'per_device_eval_batch_size'],
  ] as const) {
    if (isSet(config[old]) && config[old] !== config[current]) {
      report({ key: old, message: `${old} is ${show(config[old])}: it is the deprecated name of ${current} (now ${show(config[current])}). Rename it to ${current}.` });
    }
  }
  if (config.adafactor === true && config.optim !== 'adafactor') {
    report({ key: 'adafactor', message: `adafactor is true but optim is ${show(config.optim)}: the adafactor switch is deprecated. Remove adafactor and set optim: adafactor.` });
  }

  // intervals
  if (config.logging_strategy === 'steps' && loggingSteps === 0) {
    report({ key: 'logging_steps', message: 'logging_steps is 0 while logging_strategy is steps. Set logging_steps to a positive number, or logging_strategy: no.' });
  }
  const evalSteps = isSet(config.eval_steps) ? numberOr(config.eval_steps, 0) : loggingSteps;
  if (evalStrategy === 'steps' && !isSet(config.eval_steps) && loggingSteps === 0) {
    report({
      key: 'eval_steps',
      message: 'eval_strategy is steps but eval_steps is not set and logging_steps is 0, so there is no evaluation interval. Set eval_steps (e.g. 500) or a positive logging_steps.',
    });
  }
  if (config.lr_scheduler_type === 'reduce_lr_on_plateau' && evalStrategy === 'no') {
    report({
      key: 'lr_scheduler_type',
      message: 'lr_scheduler_type is reduce_lr_on_plateau but eval_strategy is no: this scheduler reacts to evaluation metrics. Set eval_strategy to steps or epoch, or choose another scheduler.',
    });
  }
  if (saveStrategy === 'best' && !isSet(config.metric_for_best_model)) {
    report({ key: 'save_strategy', message: 'save_strategy is best but metric_for_best_model is not set. Set metric_for_best_model (e.g. eval_loss) or choose another save_strategy.' });
  }

  // keeping the best checkpoint
  if (config.load_best_model_at_end === true) {
    if (saveStrategy !== 'best' && evalStrategy !== saveStrategy) {
      report({
        key: 'load_best_model_at_end',
        message: `load_best_model_at_end is true but eval_strategy is ${show(evalStrategy)} and save_strategy is ${show(saveStrategy)}: they must match so every evaluated step has a checkpoint. Set both to steps or both to epoch.`,
      });
    } else if (evalStrategy === 'no') {
      report({
        key: 'load_best_model_at_end',
        message: 'load_best_model_at_end is true but eval_strategy is no, so no checkpoint is ever scored. Set eval_strategy and save_strategy to steps or epoch, or remove load_best_model_at_end.',
      });
    } else if (evalStrategy === 'steps' && saveStrategy === 'steps') {
      const saveSteps = numberOr(config.save_steps, 500);
      if ((saveSteps < 1) !== (evalSteps < 1)) {
        report({
          key: 'load_best_model_at_end',
          message: `load_best_model_at_end is true with save_steps ${show(saveSteps)} and eval_steps ${show(evalSteps)}: give both as step counts or both as ratios.`,
        });
      } else if (evalSteps > 0 && Math.round(saveSteps * 1e6) % Math.round(evalSteps * 1e6) !== 0) {
        report({
          key: 'save_steps',
          message: `load_best_model_at_end is true but save_steps ${show(saveSteps)} is not a multiple of the evaluation interval ${show(evalSteps)}. Make save_steps a multiple of eval_steps (e.g. both 500).`,
        });
      }
    }
    if (stage === 'rm' || stage === 'ppo') {
      report({ key: 'load_best_model_at_end', message: `load_best_model_at_end is true but stage is ${show(stage)}, which does not support it. Remove load_best_model_at_end.` });
    }
  }
  if (isSet(config.early_stopping_steps) && (config.load_best_model_at_end !== true || evalStrategy === 'no')) {
    report({
      key: 'early_stopping_steps',
      message: `early_stopping_steps is ${show(config.early_stopping_steps)} but it needs evaluation and load_best_model_at_end: true (eval_strategy is ${show(evalStrategy)}). Set eval_strategy, save_strategy and load_best_model_at_end, or remove early_stopping_steps.`,
    });
  }

  // data the run needs
  if (config.streaming === true && numberOr(config.max_steps, -1) <= 0) {
    report({ key: 'max_steps', message: `streaming is true but max_steps is ${show(config.max_steps)}: a streamed dataset has no known length, so the run needs a step count. Set max_steps (e.g. 1000).` });
  }
  if (config.do_train === true && !isSet(config.dataset)) {
    report({ key: 'dataset', message: 'do_train is true but dataset is not set. Name the training datasets in dataset (e.g. dataset: identity,alpaca_en_demo).' });
  }
  if (config.do_train === true && !isSet(config.output_dir)) {
    report({ key: 'output_dir', message: 'do_train is true but output_dir is not set, so the trained weights would have nowhere to go. Set output_dir (e.g. saves/llama3-8b/lora/sft).' });
  }
  const evaluates = config.do_eval === true || config.do_predict === true || (isSet(evalStrategy) && evalStrategy !== 'no');
  if (evaluates && !hasEvalData(config)) {
    const why = config.do_predict === true ? 'do_predict is true' : config.do_eval === true ? 'do_eval is true' : `eval_strategy is ${show(evalStrategy)}`;
    report({ key: 'eval_dataset', message: `${why} but there is no evaluation data. Set eval_dataset, or val_size (e.g. 0.1) to hold out part of dataset.` });
  }

  // generation during evaluation
  if (config.predict_with_generate === true) {
    if (stage !== 'sft') {
      report({ key: 'predict_with_generate', message: `predict_with_generate is true but stage is ${show(stage)}; generation metrics are only computed in supervised fine-tuning. Set predict_with_generate: false.` });
    }
    if (!isSet(config.eval_dataset)) {
      report({ key: 'predict_with_generate', message: 'predict_with_generate is true but eval_dataset is not set. Name the datasets to generate for in eval_dataset.' });
    }
    if (config.compute_accuracy === true) {
      report({ key: 'compute_accuracy', message: 'compute_accuracy and predict_with_generate are both true; accuracy is computed from logits, not generated text. Set one of them to false.' });
    }
  }
  if (stage === 'sft' && config.do_predict === true && config.predict_with_generate !== true) {
    report({ key: 'do_predict', message: 'do_predict is true but predict_with_generate is false, so no predictions would be produced. Set predict_with_generate: true.' });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// generation

const generationShape = {
  do_sample: flag(true, 'Sample the next token; false means greedy or beam search.'),
  temperature: num(z.number().min(0), 0.95, 'Sampling temperature; lower is more deterministic (0 means greedy).'),
  top_p: num(z.number().gt(0).max(1), 0.7, 'Nucleus sampling: keep the smallest token set whose probability reaches top_p.'),
  top_k: num(int().min(0), 50, 'Keep only the top_k most likely tokens when sampling (0 disables).'),
  num_beams: num(int().min(1), 1, 'Beam search width; 1 means no beam search.'),
  max_length: num(int().min(1), 1024, 'Longest prompt plus response when generating; max_new_tokens takes precedence.'),
  max_new_tokens: num(int(), 1024, 'Most tokens to generate after the prompt (0 or less: use max_length).'),
  repetition_penalty: num(z.number().gt(0), 1, 'Penalty on tokens already generated; 1 means none.'),
  length_penalty: num(z.number(), 1, 'Beam search length exponent: below 1 favours short outputs, above 1 long ones.'),
  skip_special_tokens: flag(true, 'Drop special tokens when decoding generated text.'),
} satisfies z.ZodRawShape;

// ---------------------------------------------------------------------------------------------------------------
// export

const exportShape = {
  export_dir: optionalText('Folder to write the exported (merged) model to.'),
  export_format: choice(
    ['safetensors', 'onnx'],
    'safetensors',
    'What `tunekit export` writes: safetensors (a Hugging Face model folder) or onnx (a folder transformers.js loads: onnx/model.onnx with external float32 weights, config.json, tokenizer files).',
  ),
  export_size: num(int().min(1), 5, 'Largest size of one exported weight shard, in GB.'),
  export_device: choice(['cpu', 'auto'], 'cpu', 'Device used while exporting (auto may be faster).'),
  export_quantization_bit: optionalNum(int().min(1), 'Bits to quantize the exported model to (GPTQ).'),
  export_quantization_dataset: optionalText('Calibration dataset for export quantization.'),
  export_quantization_nsamples: num(int().min(1), 128, 'Calibration examples for export quantization.'),
  export_quantization_maxlen: num(int().min(1), 1024, 'Longest calibration example for export quantization.'),
  export_legacy_format: flag(false, 'Export PyTorch .bin files instead of .safetensors.'),
  export_hub_model_id: optionalText('Hub repository to push the exported model to.'),
} satisfies z.ZodRawShape;

const exportUnsupported: Unsupported[] = [
  {
    keys: ['export_quantization_bit'],
    why: 'export-time GPTQ quantization needs the Python optimum/auto-gptq stack.',
    fix: 'Remove {key} to export full-precision weights.',
  },
  { keys: ['export_legacy_format'], why: 'tunekit writes weights only as .safetensors, never as PyTorch pickles (.bin).' },
  { keys: ['export_hub_model_id'], why: HUB, fix: HUB_FIX },
];

// ---------------------------------------------------------------------------------------------------------------
// run

const runShape = {
  plugins: withDefault(listValue(), [], 'Extra plugins to load for this run: package names or paths (comma-separated or a list).'),
} satisfies z.ZodRawShape;

// ---------------------------------------------------------------------------------------------------------------

export const KERNEL_OPTION_GROUPS: readonly OptionGroup[] = [
  {
    group: 'model',
    shape: modelShape,
    check: allChecks(unsupportedCheck(modelShape, modelUnsupported), checkModel),
  },
  {
    group: 'data',
    shape: dataShape,
    selects: { template: TEMPLATE, mix_strategy: DATA_MIXER },
    check: checkData,
  },
  {
    group: 'training',
    shape: trainingShape,
    selects: { stage: STAGE, finetuning_type: TUNER, optim: OPTIMIZER, lr_scheduler_type: LR_SCHEDULER, backend: INFERENCE_BACKEND },
    check: allChecks(unsupportedCheck(trainingShape, trainingUnsupported), checkTraining),
  },
  {
    group: 'generation',
    shape: generationShape,
  },
  {
    group: 'export',
    shape: exportShape,
    check: unsupportedCheck(exportShape, exportUnsupported),
  },
  {
    group: 'run',
    shape: runShape,
  },
];
