import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** `tunekit train` as a user runs it: the built binary, the example configs, overrides on the command line. */
const repo = path.resolve(__dirname, '..', '..', '..');
const binary = path.join(repo, 'packages', 'cli', 'bin', 'tunekit.js');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-e2e-train-'));
const modelDir = path.join(work, 'quickstart-model');

function tunekit(...args: string[]): { code: number; out: string; err: string } {
  const result = spawnSync(process.execPath, [binary, ...args], { encoding: 'utf8', cwd: repo, maxBuffer: 1 << 26 });
  return { code: result.status ?? -1, out: result.stdout, err: result.stderr };
}

function ok(...args: string[]): string {
  const result = tunekit(...args);
  if (result.code !== 0) throw new Error(`tunekit ${args.join(' ')} exited ${result.code}:\n${result.err}\n${result.out}`);
  return result.out;
}

function json(file: string): Record<string, number> {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, number>;
}

function losses(outputDir: string): number[] {
  return fs.readFileSync(path.join(outputDir, 'trainer_log.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line)).filter((l) => 'loss' in l).map((l) => l.loss);
}

beforeAll(() => {
  if (!fs.existsSync(path.join(repo, 'packages', 'cli', 'dist', 'main.js'))) throw new Error('run `pnpm build` first (`pnpm test` does)');
  ok('init-model', '--arch', 'llama', '--hidden', '128', '--layers', '4', '--seed', '0', '--initializer-range', '0.08', '--out', modelDir);
});

describe('the quickstart', () => {
  it('learns the echo task: token accuracy rises far above the untrained model', () => {
    const before = path.join(work, 'before');
    const after = path.join(work, 'after');
    ok('train', 'examples/quickstart.yaml', `model_name_or_path=${modelDir}`, `output_dir=${before}`, 'do_train=false', 'plot_loss=false');
    const untrained = json(path.join(before, 'eval_results.json')).eval_accuracy;
    const out = ok('train', 'examples/quickstart.yaml', `model_name_or_path=${modelDir}`, `output_dir=${after}`);
    expect(out).toMatch(/trainable params: [\d,]+ \|\| all params: [\d,]+ \|\| trainable%: [\d.]+/);
    const trained = json(path.join(after, 'all_results.json'));
    expect(untrained).toBeLessThan(0.05);
    expect(trained.eval_accuracy).toBeGreaterThan(0.75);
    const curve = losses(after);
    expect(curve[curve.length - 1]).toBeLessThan(curve[0] - 3);
    for (const file of ['adapter_config.json', 'adapter_model.safetensors', 'tokenizer.json', 'trainer_state.json', 'training_loss.png', 'training_eval_loss.png', 'train_results.json', 'eval_results.json']) {
      expect(fs.existsSync(path.join(after, file))).toBe(true);
    }
    expect(fs.readFileSync(path.join(after, 'training_loss.png')).subarray(1, 4).toString()).toBe('PNG');

    // Generation (do_predict + predict_with_generate): the trained adapter echoes most words; the base model none.
    const predict = ['do_train=false', 'do_eval=false', 'eval_strategy=no', 'compute_accuracy=false', 'do_predict=true', 'predict_with_generate=true', 'max_new_tokens=24', 'plot_loss=false'];
    const wordAccuracy = (dir: string) => {
      const rows = fs.readFileSync(path.join(dir, 'generated_predictions.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { predict: string; label: string });
      expect(rows).toHaveLength(60);
      return rows.reduce((sum, { predict, label }) => {
        const [p, l] = [predict.trim().split(/\s+/), label.trim().split(/\s+/)];
        return sum + l.filter((word, i) => p[i] === word).length / l.length;
      }, 0) / rows.length;
    };
    ok('train', 'examples/quickstart.yaml', `model_name_or_path=${modelDir}`, `output_dir=${path.join(work, 'predict-before')}`, ...predict);
    ok('train', 'examples/quickstart.yaml', `model_name_or_path=${modelDir}`, `output_dir=${path.join(work, 'predict-after')}`, `adapter_name_or_path=${after}`, ...predict);
    expect(wordAccuracy(path.join(work, 'predict-before'))).toBeLessThan(0.05);
    expect(wordAccuracy(path.join(work, 'predict-after'))).toBeGreaterThan(0.25);
    // LLaMA-Factory's text metrics in predict_results.json rise with training.
    const results = (dir: string) => JSON.parse(fs.readFileSync(path.join(work, dir, 'predict_results.json'), 'utf8')) as Record<string, number>;
    for (const key of ['predict_bleu-4', 'predict_rouge-1', 'predict_rouge-2', 'predict_rouge-l']) {
      expect(results('predict-after')[key]).toBeGreaterThan(results('predict-before')[key] + 10);
    }

    // The adapter merged into the base (`tunekit export`) answers exactly as base + adapter did.
    const merged = path.join(work, 'merged');
    ok('export', 'examples/quickstart.yaml', `model_name_or_path=${modelDir}`, `adapter_name_or_path=${after}`, `export_dir=${merged}`);
    ok('train', 'examples/quickstart.yaml', `model_name_or_path=${merged}`, `output_dir=${path.join(work, 'predict-merged')}`, ...predict);
    const predictions = (dir: string) => fs.readFileSync(path.join(dir, 'generated_predictions.jsonl'), 'utf8');
    expect(predictions(path.join(work, 'predict-merged'))).toBe(predictions(path.join(work, 'predict-after')));
  });
});

describe('variants of the quickstart', () => {
  const base = ['examples/quickstart.yaml', `model_name_or_path=${modelDir}`, 'max_steps=4', 'logging_steps=1', 'save_steps=2', 'do_eval=false', 'eval_strategy=no', 'plot_loss=false'];

  it.each([
    ['lora', [], ['adapter_model.safetensors', 'adapter_config.json']],
    ['full', ['finetuning_type=full', 'learning_rate=1e-4'], ['model.safetensors', 'config.json']],
    ['freeze', ['finetuning_type=freeze', 'freeze_trainable_layers=1', 'learning_rate=1e-4'], ['model.safetensors', 'config.json']],
    ['lora with gradient checkpointing and accumulation', ['disable_gradient_checkpointing=false', 'gradient_accumulation_steps=2', 'per_device_train_batch_size=4'], ['adapter_model.safetensors']],
    ['lora with dropout, rsLoRA and LoRA+', ['lora_dropout=0.1', 'use_rslora=true', 'loraplus_lr_ratio=4'], ['adapter_model.safetensors']],
    ['lora with DoRA', ['use_dora=true'], ['adapter_model.safetensors']],
    ['qlora (quantization_bit 4, nf4)', ['quantization_bit=4'], ['adapter_model.safetensors']],
    ['qlora (quantization_bit 8) with DoRA', ['quantization_bit=8', 'use_dora=true'], ['adapter_model.safetensors']],
    ['full with adafactor and NEFTune', ['finetuning_type=full', 'optim=adafactor', 'learning_rate=1e-3', 'neftune_noise_alpha=5'], ['model.safetensors']],
  ])('sft %s', (_name, extra, files) => {
    const dir = path.join(work, `sft-${_name.replace(/\W+/g, '-')}`);
    ok('train', ...base, `output_dir=${dir}`, ...extra);
    for (const file of files) expect(fs.existsSync(path.join(dir, file))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'checkpoint-4', 'optimizer.safetensors'))).toBe(true);
    expect(losses(dir)).toHaveLength(4);
  });

  it('adds new special tokens: the vocabulary grows to a multiple of 64 and the tokenizer is saved with them', () => {
    const dir = path.join(work, 'new-tokens');
    ok('train', ...base, `output_dir=${dir}`, 'finetuning_type=full', 'learning_rate=1e-4', 'new_special_tokens=<|tool|>,<|result|>');
    const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { vocab_size: number };
    expect(config.vocab_size).toBe(512);
    const tokenizer = fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8');
    expect(tokenizer).toContain('<|tool|>');
    expect(tunekit('train', ...base, `output_dir=${path.join(work, 'new-tokens-lora')}`, 'new_special_tokens=<|tool|>').err).toMatch(/not built yet/);
  });

  it('prints the parameter status LLaMA-Factory prints: freeze trains only the last layer', () => {
    const out = ok('train', ...base, `output_dir=${path.join(work, 'param-status')}`, 'finetuning_type=freeze', 'freeze_trainable_layers=1', 'print_param_status=true', 'max_steps=1');
    expect(out).toContain('name: model.layers.3.mlp.up_proj.weight, dtype: float32, device: cpu, trainable: true');
    expect(out).toContain('name: model.layers.2.mlp.up_proj.weight, dtype: float32, device: cpu, trainable: false');
  });

  it('pt on raw text with full fine-tuning', () => {
    const dir = path.join(work, 'pt-full');
    ok('train', ...base, `output_dir=${dir}`, 'stage=pt', 'dataset=pt_demo', 'eval_dataset=null', 'finetuning_type=full', 'learning_rate=1e-4', 'cutoff_len=32');
    expect(fs.existsSync(path.join(dir, 'model.safetensors'))).toBe(true);
    expect(losses(dir).every((loss) => Number.isFinite(loss))).toBe(true);
  });

  it('runs the LLaMA-Factory LoRA SFT example unchanged but for its model and length', () => {
    const dir = path.join(work, 'lf-example');
    ok('train', 'examples/lora_sft.yaml', `model_name_or_path=${modelDir}`, `output_dir=${dir}`, 'max_steps=2');
    expect(fs.existsSync(path.join(dir, 'adapter_model.safetensors'))).toBe(true);
  });

  it('explains a config error with exit code 2 before doing any work', () => {
    const result = tunekit('train', ...base, `output_dir=${path.join(work, 'bad')}`, 'lora_rank=0', 'lerning_rate=1');
    expect(result.code).toBe(2);
    expect(result.err).toContain("lerning_rate: unknown key; did you mean 'learning_rate'?");
    expect(fs.existsSync(path.join(work, 'bad'))).toBe(false);
  });
});
