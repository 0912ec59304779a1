import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * The online RL stages as a user runs them: the built CLI on the quickstart model, first taught the echo task by the
 * quickstart's LoRA SFT (merged with `tunekit export`), then improved by GRPO (rule-based rewards, built in and from a
 * third-party plugin) and by PPO against a reward adapter trained by stage rm on the echo preference pairs.
 */
const repo = path.resolve(__dirname, '..', '..', '..');
const binary = path.join(repo, 'packages', 'cli', 'bin', 'tunekit.js');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-e2e-rl-'));
const baseDir = path.join(work, 'quickstart-model');
const sftDir = path.join(work, 'sft-merged');
const rmDir = path.join(work, 'rm');
const rewardPlugin = path.join(repo, 'e2e', 'rl', 'reward-plugin');

function run(...args: string[]) {
  return spawnSync(process.execPath, [binary, ...args], { encoding: 'utf8', cwd: repo, maxBuffer: 1 << 26 });
}

function ok(...args: string[]): string {
  const result = run(...args);
  if (result.status !== 0) throw new Error(`tunekit ${args.join(' ')} exited ${result.status}:\n${result.stderr}\n${result.stdout}`);
  return result.stdout;
}

function json(file: string): Record<string, number> {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, number>;
}

/** The training entries of trainer_state.json's log_history. */
function logged(outputDir: string): Record<string, number>[] {
  const state = JSON.parse(fs.readFileSync(path.join(outputDir, 'trainer_state.json'), 'utf8')) as { log_history: Record<string, number>[] };
  return state.log_history.filter((entry) => 'loss' in entry);
}

const report = (line: string) => process.stdout.write(`${line}\n`);

/** The quickstart's settings (LoRA r16 on every linear layer) on the SFT model, with its echo prompts. */
const quickstart = ['examples/quickstart.yaml', `model_name_or_path=${sftDir}`, 'compute_accuracy=false', 'plot_loss=false', 'save_steps=1000', 'eval_strategy=no'];

beforeAll(() => {
  if (!fs.existsSync(path.join(repo, 'packages', 'cli', 'dist', 'main.js'))) throw new Error('run `pnpm build` first (`pnpm test` does)');
  ok('init-model', '--arch', 'llama', '--hidden', '128', '--layers', '4', '--seed', '0', '--initializer-range', '0.08', '--out', baseDir);
  const sft = path.join(work, 'sft');
  ok('train', 'examples/quickstart.yaml', `model_name_or_path=${baseDir}`, `output_dir=${sft}`, 'do_eval=false', 'eval_strategy=no', 'plot_loss=false', 'save_steps=1000');
  ok('export', 'examples/quickstart.yaml', `model_name_or_path=${baseDir}`, `adapter_name_or_path=${sft}`, `export_dir=${sftDir}`);
  ok('train', ...quickstart, 'stage=rm', 'dataset=echo_pref_train', 'eval_dataset=null', 'do_eval=false', 'max_steps=40', `output_dir=${rmDir}`);
}, 300_000);

describe('grpo', () => {
  it("raises a built-in rule-based reward (ms-swift's soft_overlong) on held-out prompts, logging TRL's metrics", () => {
    const [before, after] = [path.join(work, 'grpo-before'), path.join(work, 'grpo-after')];
    const grpo = [...quickstart, 'stage=grpo', 'dataset=echo_train', 'eval_dataset=echo_eval', 'reward_funcs=[soft_overlong,accuracy]', 'reward_weights=[1,0]', 'soft_max_length=12', 'soft_cache_length=10', 'num_generations=8', 'per_device_train_batch_size=16', 'max_completion_length=24', 'learning_rate=2e-3', 'logging_steps=5'];
    ok('train', ...grpo, `output_dir=${before}`, 'do_train=false');
    const out = ok('train', ...grpo, `output_dir=${after}`, 'max_steps=30');
    const [untrained, trained] = [json(path.join(before, 'eval_results.json')), json(path.join(after, 'eval_results.json'))];
    report(`grpo held-out soft_overlong reward ${untrained.eval_reward.toFixed(4)} -> ${trained.eval_reward.toFixed(4)}`);
    expect(out).toContain('grpo: 8 completions per prompt, reward functions soft_overlong (weight 1), accuracy (weight 0), beta 0.04.');
    expect(out).toContain('Reference model: the policy with its adapters disabled.');
    expect(trained.eval_reward).toBeGreaterThan(untrained.eval_reward + 0.3);
    expect(trained['eval_rewards/soft_overlong/mean']).toBe(trained.eval_reward);
    const entries = logged(after);
    expect(entries).toHaveLength(6);
    for (const key of ['reward', 'reward_std', 'frac_reward_zero_std', 'kl', 'clip_ratio', 'completions/mean_length', 'rewards/soft_overlong/mean', 'rewards/accuracy/mean', 'grad_norm', 'learning_rate']) {
      expect(entries.every((entry) => Number.isFinite(entry[key]))).toBe(true);
    }
    expect(entries[5].reward).toBeGreaterThan(entries[0].reward);
    expect(entries[0].kl).toBeLessThan(0.05); // the policy starts as its reference (LoRA B = 0)
    const lines = fs.readFileSync(path.join(after, 'trainer_log.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, number>);
    expect(lines.every((line) => typeof line.reward === 'number')).toBe(true);
    expect(out).toMatch(/\[30\/30 100\.0%\].*loss=-?[\d.]+, reward=-?[\d.]+, kl=[\d.]+/);
    for (const file of ['adapter_model.safetensors', 'adapter_config.json', 'train_results.json', 'eval_results.json']) expect(fs.existsSync(path.join(after, file))).toBe(true);
  });

  it('trains with a third-party reward function (a plugin at a path): answer correctness rises on its prompts', () => {
    const [before, after] = [path.join(work, 'grpo-words-before'), path.join(work, 'grpo-words-after')];
    const grpo = [...quickstart, 'stage=grpo', `plugins=[${rewardPlugin}]`, 'dataset=echo_train', 'eval_dataset=echo_train', 'max_samples=8', 'reward_funcs=[echo_words]', 'num_generations=16', 'per_device_train_batch_size=32', 'max_completion_length=24', 'beta=0', 'loss_type=bnpo', 'learning_rate=2e-3', 'logging_steps=10'];
    ok('train', ...grpo, `output_dir=${before}`, 'do_train=false');
    const out = ok('train', ...grpo, `output_dir=${after}`, 'max_steps=40');
    const [untrained, trained] = [json(path.join(before, 'eval_results.json')), json(path.join(after, 'eval_results.json'))];
    report(`grpo echo_words (words in place) on its 8 prompts ${untrained.eval_reward.toFixed(4)} -> ${trained.eval_reward.toFixed(4)}`);
    expect(out).toContain('beta 0 (no reference model)');
    expect(trained.eval_reward).toBeGreaterThan(untrained.eval_reward + 0.08);
    expect(logged(after).every((entry) => !('kl' in entry))).toBe(true);
  });

  it('with full fine-tuning, takes its reference from a frozen copy of the base (built-in format and repetition rewards)', () => {
    const dir = path.join(work, 'grpo-full');
    const out = ok('train', ...quickstart, 'stage=grpo', 'finetuning_type=full', 'learning_rate=1e-5', 'dataset=echo_train', 'eval_dataset=null', 'do_eval=false', 'reward_funcs=[format,repetition]', 'repetition_n_grams=1', 'num_generations=4', 'per_device_train_batch_size=8', 'max_completion_length=16', 'max_steps=3', 'logging_steps=1', `output_dir=${dir}`);
    expect(out).toContain(`Reference model: a frozen copy of ${sftDir}, in a session of its own.`);
    const entries = logged(dir);
    expect(entries).toHaveLength(3);
    expect(entries[0].kl).toBeLessThan(1e-4);
    expect(entries.every((entry) => entry['rewards/format/mean'] === 0 && entry['rewards/repetition/mean'] <= 0)).toBe(true);
    expect(fs.existsSync(path.join(dir, 'model.safetensors'))).toBe(true);
  });

  it('trains full parameters with GaLore (projectors in the checkpointed optimizer state)', () => {
    const dir = path.join(work, 'grpo-galore');
    const out = ok('train', ...quickstart, 'stage=grpo', 'finetuning_type=full', 'use_galore=true', 'galore_rank=8', 'galore_update_interval=2', 'learning_rate=1e-5', 'dataset=echo_train', 'eval_dataset=null', 'do_eval=false', 'reward_funcs=[format,repetition]', 'repetition_n_grams=1', 'num_generations=4', 'per_device_train_batch_size=8', 'max_completion_length=16', 'max_steps=3', 'logging_steps=1', 'save_steps=2', `output_dir=${dir}`);
    const state = Number(/optimizer state: \d+ tensors, ([\d.]+) MiB/.exec(out)![1]);
    const params = Number(/trainable params: ([\d,]+)/.exec(out)![1].replace(/,/g, ''));
    expect(state).toBeLessThan((params * 8) / 2 ** 20 / 2); // AdamW would keep 8 bytes per parameter
    expect(logged(dir)).toHaveLength(3);
    const file = fs.readFileSync(path.join(dir, 'checkpoint-2', 'optimizer.safetensors'));
    const header = JSON.parse(file.subarray(8, 8 + Number(file.readBigUInt64LE(0))).toString('utf8')) as Record<string, unknown>;
    expect(Object.keys(header).some((key) => key.endsWith('.projector_right') || key.endsWith('.projector_left'))).toBe(true);
  });

  it('trains full parameters with BAdam (one layer at a time; rollouts read the finished layers) and resumes on the same curve', () => {
    const [whole, resumed] = [path.join(work, 'grpo-badam'), path.join(work, 'grpo-badam-resumed')];
    const settings = [...quickstart, 'stage=grpo', 'finetuning_type=full', 'use_badam=true', 'badam_switch_interval=2', 'badam_verbose=1', 'learning_rate=1e-4', 'lr_scheduler_type=constant', 'dataset=echo_train', 'eval_dataset=null', 'do_eval=false', 'reward_funcs=[soft_overlong]', 'soft_max_length=12', 'soft_cache_length=10', 'num_generations=4', 'per_device_train_batch_size=8', 'max_completion_length=16', 'max_steps=5', 'logging_steps=1', 'save_steps=3'];
    const out = ok('train', ...settings, `output_dir=${whole}`);
    expect(out).toContain('BAdam: from step 2, parameters with the prefix model.layers.1. are trainable');
    expect(out).toContain('BAdam: from step 4, parameters with the prefix model.layers.2. are trainable');
    // Resumed from step 3 (layer 1's second step): the block and its state come back from the checkpoint.
    fs.cpSync(path.join(whole, 'checkpoint-3'), path.join(resumed, 'checkpoint-3'), { recursive: true });
    ok('train', ...settings, `output_dir=${resumed}`, 'overwrite_output_dir=false', `resume_from_checkpoint=${path.join(resumed, 'checkpoint-3')}`);
    const curve = (dir: string) => logged(dir).map((entry) => [entry.loss, entry.reward, entry.kl]);
    expect(curve(resumed)).toEqual(curve(whole));
    expect(logged(whole)).toHaveLength(5);
  });

  it('reuses each batch of rollouts num_iterations times, and resumes between two of them on the same curve', () => {
    const [whole, resumed] = [path.join(work, 'grpo-iterations'), path.join(work, 'grpo-iterations-resumed')];
    const short = [...quickstart, 'stage=grpo', 'dataset=echo_train', 'eval_dataset=null', 'do_eval=false', 'reward_funcs=[soft_overlong]', 'soft_max_length=12', 'soft_cache_length=10', 'num_generations=4', 'per_device_train_batch_size=8', 'max_completion_length=16', 'num_iterations=2', 'learning_rate=2e-3', 'max_steps=4', 'logging_steps=1', 'save_steps=3'];
    ok('train', ...short, `output_dir=${whole}`);
    const entries = logged(whole);
    // Steps 1 and 3 sample (their rewards are logged); steps 2 and 4 train again on those rollouts.
    expect(entries.map((entry) => 'reward' in entry)).toEqual([true, false, true, false]);
    expect(entries.every((entry) => Number.isFinite(entry.kl) && Number.isFinite(entry.clip_ratio))).toBe(true);
    const state = JSON.parse(fs.readFileSync(path.join(whole, 'checkpoint-3', 'rl_state.json'), 'utf8')) as { algorithm: { buffer?: { micro: unknown[] } } };
    expect(state.algorithm.buffer?.micro).toHaveLength(1);
    fs.cpSync(path.join(whole, 'checkpoint-3'), path.join(resumed, 'checkpoint-3'), { recursive: true });
    ok('train', ...short, `output_dir=${resumed}`, 'overwrite_output_dir=false', `resume_from_checkpoint=${path.join(resumed, 'checkpoint-3')}`);
    const curve = (dir: string) => logged(dir).map((entry) => [entry.loss, entry.kl, entry.clip_ratio]);
    expect(curve(resumed)).toEqual(curve(whole));
  });

  it('refuses a config without reward functions, naming the key (exit code 2)', () => {
    const result = run('train', ...quickstart, 'stage=grpo', `output_dir=${path.join(work, 'grpo-bad')}`);
    expect(result.status).toBe(2);
    expect(result.stderr + result.stdout).toContain('reward_funcs');
  });
});

describe('ppo', () => {
  const ppo = [...quickstart, 'stage=ppo', `reward_model=${rmDir}`, 'dataset=echo_train', 'eval_dataset=echo_eval', 'max_new_tokens=24', 'per_device_train_batch_size=8', 'learning_rate=5e-4'];

  it('with a reward adapter trained by stage rm (reward_model_type lora), raises the mean reward on held-out prompts', () => {
    const [before, after] = [path.join(work, 'ppo-before'), path.join(work, 'ppo-after')];
    ok('train', ...ppo, `output_dir=${before}`, 'do_train=false');
    const out = ok('train', ...ppo, `output_dir=${after}`, 'max_steps=30', 'logging_steps=5');
    const [untrained, trained] = [json(path.join(before, 'eval_results.json')), json(path.join(after, 'eval_results.json'))];
    report(`ppo held-out reward-model score ${untrained.eval_reward.toFixed(4)} -> ${trained.eval_reward.toFixed(4)}`);
    expect(out).toContain(`Reward model: the rm adapter ${rmDir} on the policy's base weights, with its value head.`);
    expect(out).toContain('Value head initialized');
    expect(trained.eval_reward).toBeGreaterThan(untrained.eval_reward + 0.2);
    const entries = logged(after);
    expect(entries).toHaveLength(6);
    for (const key of ['reward', 'objective/kl', 'objective/kl_coef', 'objective/entropy', 'ppo/loss/policy', 'ppo/loss/value', 'ppo/loss/total', 'ppo/policy/clipfrac', 'ppo/policy/approxkl', 'ppo/val/vpred', 'ppo/val/error', 'ppo/val/clipfrac', 'ppo/returns/mean', 'ppo/mean_scores', 'tokens/responses_len_mean']) {
      expect(entries.every((entry) => Number.isFinite(entry[key]))).toBe(true);
    }
    // TRL's adaptive controller from init_kl_coef 0.2: the KL stays far below ppo_target 6, so the coefficient shrinks
    // by the clipped error 0.2 times 8 sequences / horizon 10000 each step.
    expect(entries[0]['objective/kl_coef']).toBeCloseTo(0.2 * (1 - 0.00016) ** 2, 6);
    expect(entries[5]['objective/kl_coef']).toBeLessThan(entries[0]['objective/kl_coef']);
    for (const file of ['adapter_model.safetensors', 'value_head.safetensors', 'train_results.json']) expect(fs.existsSync(path.join(after, file))).toBe(true);
  });

  it("scores with a reward API (reward_model_type api, LLaMA-Factory's {model, messages} -> {scores})", async () => {
    const received: string[][] = [];
    const server = http.createServer((req, res) => {
      let text = '';
      req.on('data', (chunk) => (text += chunk));
      req.on('end', () => {
        const { messages } = JSON.parse(text) as { messages: string[] };
        received.push(messages);
        res.end(JSON.stringify({ scores: messages.map((m) => -m.length / 100) }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/score`;
    const dir = path.join(work, 'ppo-api');
    try {
      const args = [binary, 'train', ...ppo, 'reward_model_type=api', `reward_model=${url}`, 'eval_dataset=null', 'do_eval=false', 'max_steps=2', 'logging_steps=1', 'per_device_train_batch_size=4', `output_dir=${dir}`];
      const status = await new Promise<number | null>((resolve) => spawn(process.execPath, args, { cwd: repo, stdio: 'ignore' }).on('exit', resolve));
      expect(status).toBe(0);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    expect(received).toHaveLength(2);
    // Each message is the prompt and the completion as text (the chat template's words included).
    expect(received[0].length).toBe(4);
    expect(received[0].every((message) => message.includes('Repeat after me:'))).toBe(true);
    const entries = logged(dir);
    expect(entries.map((entry) => entry.reward)).toEqual(received.map((messages) => expect.closeTo(messages.reduce((sum, m) => sum - m.length / 100, 0) / messages.length, 6)));
  });

  it('normalises scores (ppo_score_norm) and whitens rewards (ppo_whiten_rewards) when asked', () => {
    const dir = path.join(work, 'ppo-norm');
    ok('train', ...ppo, 'eval_dataset=null', 'do_eval=false', 'max_steps=3', 'logging_steps=1', 'ppo_score_norm=true', 'ppo_whiten_rewards=true', 'ppo_buffer_size=2', 'per_device_train_batch_size=4', `output_dir=${dir}`);
    const entries = logged(dir);
    expect(entries).toHaveLength(3);
    expect(entries.every((entry) => Number.isFinite(entry['ppo/loss/total']) && Number.isFinite(entry['ppo/returns/mean']))).toBe(true);
  });

  it('resumes from a checkpoint (adapter, value head, optimizer, KL controller) on the same curve', () => {
    const [whole, resumed] = [path.join(work, 'ppo-whole'), path.join(work, 'ppo-resumed')];
    const short = [...ppo, 'eval_dataset=null', 'do_eval=false', 'max_steps=4', 'logging_steps=1', 'save_steps=2', 'ppo_epochs=2'];
    ok('train', ...short, `output_dir=${whole}`);
    const checkpoint = path.join(whole, 'checkpoint-2');
    for (const file of ['adapter_model.safetensors', 'value_head.safetensors', 'optimizer.safetensors', 'rl_state.json']) expect(fs.existsSync(path.join(checkpoint, file))).toBe(true);
    const state = JSON.parse(fs.readFileSync(path.join(checkpoint, 'rl_state.json'), 'utf8')) as { optimizer_updates: number; algorithm: { kl_controller: { kind: string; value: number } } };
    expect(state.optimizer_updates).toBe(4); // 2 steps x 2 epochs x 1 buffer mini-batch
    expect(state.algorithm.kl_controller.kind).toBe('adaptive');
    fs.cpSync(checkpoint, path.join(resumed, 'checkpoint-2'), { recursive: true });
    ok('train', ...short, `output_dir=${resumed}`, 'overwrite_output_dir=false', `resume_from_checkpoint=${path.join(resumed, 'checkpoint-2')}`);
    const curve = (dir: string) => logged(dir).map((entry) => [entry.loss, entry.reward, entry['objective/kl_coef']]);
    expect(curve(resumed)).toEqual(curve(whole));
  });
});
