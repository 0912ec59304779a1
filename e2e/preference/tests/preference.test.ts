import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * The preference stages as a user runs them: the built CLI on the quickstart model (random weights, built here) and
 * the echo task's preference data (examples/data/make-echo-preference-data.js): chosen = the exact echo, rejected =
 * the echo with one word swapped for an intruder. Held-out pairs are echo_pref_eval.
 */
const repo = path.resolve(__dirname, '..', '..', '..');
const binary = path.join(repo, 'packages', 'cli', 'bin', 'tunekit.js');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-e2e-preference-'));
const modelDir = path.join(work, 'quickstart-model');

function ok(...args: string[]): string {
  const result = spawnSync(process.execPath, [binary, ...args], { encoding: 'utf8', cwd: repo, maxBuffer: 1 << 26 });
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

/** The quickstart's settings (LoRA r16 on every linear layer, lr 5e-3, batch 8) on the echo preference pairs. */
const quickstart = ['examples/quickstart.yaml', `model_name_or_path=${modelDir}`, 'dataset=echo_pref_train', 'eval_dataset=echo_pref_eval', 'compute_accuracy=false', 'plot_loss=false', 'save_steps=1000'];
/** Short runs that only have to work: no evaluation, a few steps. */
const short = [...quickstart, 'do_eval=false', 'eval_strategy=no', 'eval_dataset=null', 'logging_steps=1', 'max_steps=4'];

beforeAll(() => {
  if (!fs.existsSync(path.join(repo, 'packages', 'cli', 'dist', 'main.js'))) throw new Error('run `pnpm build` first (`pnpm test` does)');
  ok('init-model', '--arch', 'llama', '--hidden', '128', '--layers', '4', '--seed', '0', '--out', modelDir);
});

describe('dpo', () => {
  it('raises the chosen-minus-rejected margin on held-out pairs (sigmoid loss, LoRA, reference = adapters disabled)', () => {
    const [before, after] = [path.join(work, 'dpo-before'), path.join(work, 'dpo-after')];
    ok('train', ...quickstart, 'stage=dpo', `output_dir=${before}`, 'do_train=false');
    const out = ok('train', ...quickstart, 'stage=dpo', `output_dir=${after}`, 'max_steps=30', 'logging_steps=10', 'eval_steps=30');
    const [untrained, trained] = [json(path.join(before, 'eval_results.json')), json(path.join(after, 'eval_results.json'))];
    const logpsMargin = (m: Record<string, number>) => m['eval_logps/chosen'] - m['eval_logps/rejected'];
    report(`dpo held-out: rewards/margins ${untrained['eval_rewards/margins'].toFixed(4)} -> ${trained['eval_rewards/margins'].toFixed(4)}, ` +
      `rewards/accuracies ${untrained['eval_rewards/accuracies'].toFixed(3)} -> ${trained['eval_rewards/accuracies'].toFixed(3)}, ` +
      `logps chosen - rejected ${logpsMargin(untrained).toFixed(2)} -> ${logpsMargin(trained).toFixed(2)}, eval_loss ${untrained.eval_loss.toFixed(4)} -> ${trained.eval_loss.toFixed(4)}`);

    expect(out).toContain('reference model: the policy with its adapters disabled, in the same graph');
    // Untrained, the policy is its reference (LoRA B = 0): every reward is 0 and the loss is log 2.
    expect(untrained['eval_rewards/margins']).toBe(0);
    expect(untrained.eval_loss).toBeCloseTo(Math.log(2), 5);
    expect(trained['eval_rewards/margins']).toBeGreaterThan(0.2);
    expect(trained['eval_rewards/accuracies']).toBeGreaterThan(0.8);
    expect(logpsMargin(trained)).toBeGreaterThan(logpsMargin(untrained) + 3);
    expect(trained.eval_loss).toBeLessThan(0.6);
    // The DPO metrics are logged as TRL / LLaMA-Factory log them, and shown on the progress line.
    const entries = logged(after);
    expect(entries).toHaveLength(3);
    for (const key of ['rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected', 'logits/chosen', 'logits/rejected']) {
      expect(entries.every((entry) => Number.isFinite(entry[key]))).toBe(true);
    }
    expect(entries[2]['rewards/margins']).toBeGreaterThan(entries[0]['rewards/margins']);
    const lines = fs.readFileSync(path.join(after, 'trainer_log.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, number>);
    expect(lines.filter((line) => 'loss' in line).every((line) => typeof line.accuracy === 'number')).toBe(true);
    expect(out).toMatch(/\[30\/30 100\.0%\].*loss=[\d.]+, rewards\/margins=[\d.]+, rewards\/accuracies=[\d.]+/);
    for (const file of ['adapter_model.safetensors', 'adapter_config.json', 'eval_results.json', 'train_results.json']) expect(fs.existsSync(path.join(after, file))).toBe(true);
  });

  it.each(['orpo', 'simpo'])('trains with pref_loss %s and no reference model', (loss) => {
    const dir = path.join(work, `dpo-${loss}`);
    const out = ok('train', ...short, 'stage=dpo', `pref_loss=${loss}`, `output_dir=${dir}`);
    expect(out).toContain(`dpo with the ${loss} loss; reference model: none (the loss is reference-free)`);
    const entries = logged(dir);
    expect(entries).toHaveLength(4);
    expect(entries.every((entry) => Number.isFinite(entry.loss) && Number.isFinite(entry['rewards/margins']))).toBe(true);
    if (loss === 'orpo') expect(entries.every((entry) => Number.isFinite(entry.sft_loss) && Number.isFinite(entry.odds_ratio_loss))).toBe(true);
  });

  it('with full fine-tuning, uses a frozen copy of the base model as the reference', () => {
    const dir = path.join(work, 'dpo-full');
    const out = ok('train', ...short, 'stage=dpo', 'finetuning_type=full', 'learning_rate=1e-4', `output_dir=${dir}`);
    expect(out).toContain(`reference model: a frozen copy of ${modelDir}, in a session of its own`);
    const entries = logged(dir);
    // Step 1: the policy is still the reference, up to float rounding between the two sessions.
    expect(entries[0].loss).toBeCloseTo(Math.log(2), 4);
    expect(Math.abs(entries[0]['rewards/margins'])).toBeLessThan(1e-3);
    expect(entries[3]['rewards/margins']).toBeGreaterThan(entries[0]['rewards/margins']);
    expect(fs.existsSync(path.join(dir, 'model.safetensors'))).toBe(true);
  });

  it("runs LLaMA-Factory's LoRA DPO example shape (examples/dpo.yaml, pref_loss: sigmoid) unchanged but for its model", () => {
    const dir = path.join(work, 'lf-dpo');
    ok('train', 'examples/dpo.yaml', `model_name_or_path=${modelDir}`, `output_dir=${dir}`);
    expect(fs.existsSync(path.join(dir, 'adapter_model.safetensors'))).toBe(true);
    // 6 demo pairs, batch 1 x accumulation 8, 3 epochs: 3 steps at lr 5e-6 (too few to log at logging_steps 10).
    const state = JSON.parse(fs.readFileSync(path.join(dir, 'trainer_state.json'), 'utf8')) as { global_step: number };
    expect(state.global_step).toBe(3);
    expect(json(path.join(dir, 'train_results.json')).train_loss).toBeCloseTo(Math.log(2), 2);
  });
});

describe('rm', () => {
  it('trains a value head (LoRA) whose accuracy on held-out pairs is far above chance, saved as LLaMA-Factory saves it', () => {
    const [before, after] = [path.join(work, 'rm-before'), path.join(work, 'rm-after')];
    ok('train', ...quickstart, 'stage=rm', `output_dir=${before}`, 'do_train=false');
    ok('train', ...quickstart, 'stage=rm', `output_dir=${after}`, 'max_steps=40', 'logging_steps=10', 'eval_steps=40', 'save_steps=20');
    const [untrained, trained] = [json(path.join(before, 'eval_results.json')), json(path.join(after, 'eval_results.json'))];
    report(`rm held-out: accuracy ${untrained.eval_accuracy.toFixed(4)} -> ${trained.eval_accuracy.toFixed(4)}, eval_loss ${untrained.eval_loss.toFixed(4)} -> ${trained.eval_loss.toFixed(4)}`);
    expect(trained.eval_accuracy).toBeGreaterThan(0.75);
    expect(trained.eval_loss).toBeLessThan(untrained.eval_loss);
    for (const dir of [after, path.join(after, 'checkpoint-20'), path.join(after, 'checkpoint-40')]) {
      expect(fs.existsSync(path.join(dir, 'value_head.safetensors'))).toBe(true);
      expect(fs.existsSync(path.join(dir, 'adapter_model.safetensors'))).toBe(true);
    }
    expect(logged(after).every((entry) => Number.isFinite(entry.accuracy))).toBe(true);
  });

  it("predicts (do_predict) each held-out pair's scores as LLaMA-Factory writes them", () => {
    const [trained, predicted] = [path.join(work, 'rm-after'), path.join(work, 'rm-predict')];
    ok('train', ...quickstart, 'stage=rm', `adapter_name_or_path=${trained}`, `output_dir=${predicted}`, 'do_train=false', 'do_eval=false', 'do_predict=true');
    const lines = fs.readFileSync(path.join(predicted, 'generated_predictions.jsonl'), 'utf8').split('\n').map((line) => JSON.parse(line) as { chosen: number; rejected: number });
    const results = json(path.join(predicted, 'predict_results.json'));
    const evalResults = json(path.join(trained, 'eval_results.json'));
    expect(lines.length).toBeGreaterThan(10);
    // The accuracy is the fraction of pairs whose chosen response scores higher, and equals the trained run's eval.
    expect(results.predict_accuracy).toBeCloseTo(lines.filter((l) => l.chosen > l.rejected).length / lines.length, 6);
    expect(results.predict_accuracy).toBeCloseTo(evalResults.eval_accuracy, 6);
    expect(results.predict_loss).toBeCloseTo(evalResults.eval_loss, 4);
  });
});

describe('rm with full fine-tuning', () => {
  it('saves the model and the value head apart, and resumes both from a checkpoint on the same curve', () => {
    const [whole, resumed] = [path.join(work, 'rm-full'), path.join(work, 'rm-full-resumed')];
    const full = [...short, 'stage=rm', 'finetuning_type=full', 'learning_rate=1e-4', 'save_steps=2'];
    ok('train', ...full, `output_dir=${whole}`);
    for (const file of ['model.safetensors', 'config.json', 'value_head.safetensors', 'checkpoint-2/value_head.safetensors']) expect(fs.existsSync(path.join(whole, file))).toBe(true);
    fs.cpSync(path.join(whole, 'checkpoint-2'), path.join(resumed, 'checkpoint-2'), { recursive: true });
    ok('train', ...full, `output_dir=${resumed}`, 'overwrite_output_dir=false', `resume_from_checkpoint=${path.join(resumed, 'checkpoint-2')}`);
    const losses = (dir: string) => logged(dir).map((entry) => entry.loss);
    expect(losses(resumed)).toEqual(losses(whole));
  });
});

describe('kto', () => {
  it('trains on desirable / undesirable examples: the loss is finite and falls', () => {
    const dir = path.join(work, 'kto');
    ok('train', ...quickstart, 'stage=kto', 'dataset=echo_kto', 'eval_dataset=null', 'do_eval=false', 'eval_strategy=no', 'pref_beta=0.5', 'max_steps=30', 'logging_steps=5', `output_dir=${dir}`);
    const entries = logged(dir);
    const losses = entries.map((entry) => entry.loss);
    report(`kto train loss per 5 steps: ${losses.map((loss) => loss.toFixed(4)).join(' ')}`);
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(Math.min(...losses.slice(-3))).toBeLessThan(losses[0] - 0.05);
    expect(losses.slice(-3).reduce((a, b) => a + b, 0) / 3).toBeLessThan(losses[0]);
    for (const key of ['kl', 'rewards/chosen', 'rewards/rejected', 'rewards/margins', 'logps/chosen', 'logps/rejected']) {
      expect(entries.every((entry) => Number.isFinite(entry[key]))).toBe(true);
    }
    expect(entries.some((entry) => 'count/chosen' in entry || 'rewards/chosen_sum' in entry)).toBe(false);
  });
});
