import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parameterSpecs, quantizableWeights, readModelConfig } from '@tunekit/models';
import { smollmModelDir } from './smollm';
import { peakRssMb, row, threads } from './measure';

/**
 * Memory-efficient training on the SmolLM-135M shape (random weights): full AdamW, GaLore, BAdam, LoRA and QLoRA,
 * each a real `tunekit train` run (the CLI's own `main`, sft stage, in its own process) on a synthetic alpaca set of
 * long examples cut to cutoff_len tokens: batch 2 x 256, 6 optimizer steps, logging every step, no checkpoints, the
 * trainer's defaults otherwise (gradient checkpointing on, as in LLaMA-Factory).
 *
 * Printed per mode: peak RSS of the process, tokens/s (tokens of a step / the median time of steps 3-6, so the first
 * two steps, which build and compile the programs, are warm-up), the optimizer state the trainer reports at the start
 * (`optimizer state: <n> tensors, <x> MiB`), the base weights as the model stores them (QLoRA: the decoder's linear
 * weights blockwise nf4 with float32 scales, the rest float32) and the ratios to full AdamW. "time to step 1" counts
 * from the start of the run: loading, preprocessing, quantizing (QLoRA, first run only; the base is cached in the
 * model folder), building the programs and GaLore's first SVDs.
 *
 * Before each mode it waits (up to 2 minutes) for the cores to be idle, runs a mode again (TUNEKIT_BENCH_RETRIES
 * times at most, default 2) when other processes kept more than a third of a core busy during it, and reports how busy
 * they kept the cores during the run: tokens/s measured beside other work is not comparable.
 *
 *   TUNEKIT_BENCH_MODES=full,galore,badam,lora,qlora   which modes (default all, in this order)
 *   TUNEKIT_THREADS=2                                  onnxruntime intra-op threads (cpu_threads)
 */
const BATCH = 2;
const SEQ = 256;
const STEPS = 6;
const WARMUP = 2;
const REPO = resolve(__dirname, '..', '..', '..');
const CLI_MAIN = join(REPO, 'packages', 'cli', 'dist', 'main.js');

const MODES = {
  full: { label: 'full AdamW', overrides: ['finetuning_type=full'] },
  galore: {
    label: 'GaLore r 16, all linear',
    overrides: ['finetuning_type=full', 'use_galore=true', 'galore_target=all', 'galore_rank=16', 'galore_update_interval=200'],
  },
  badam: {
    label: 'BAdam layer, ascending',
    // BAdam switches after each step k with (k + 1) % interval == 0: with 4, once, after step 3. The rebuild of the
    // programs makes step 4 the slowest of the measured steps 3-6, which the median leaves out.
    overrides: ['finetuning_type=full', 'use_badam=true', 'badam_mode=layer', 'badam_switch_mode=ascending', 'badam_switch_interval=4'],
  },
  lora: { label: 'LoRA r 8, all linear', overrides: ['finetuning_type=lora', 'lora_rank=8', 'lora_alpha=16', 'lora_target=all'] },
  qlora: { label: 'QLoRA nf4, LoRA r 8, all linear', overrides: ['finetuning_type=lora', 'lora_rank=8', 'lora_alpha=16', 'lora_target=all', 'quantization_bit=4'] },
} as const;
type Mode = keyof typeof MODES;

interface ChildResult {
  code: number;
  peakMb: number;
  /** Milliseconds from the start of the run to each logged step (1-based steps). */
  stepAt: Record<number, number>;
  /** Tokens seen at each logged step (trainer_log.jsonl total_tokens). */
  tokensAt: Record<number, number>;
  losses: number[];
  stateMiB?: number;
  stateTensors?: number;
  trainable?: string;
  lines: string[];
  error?: string;
  /** CPU time of the child (user + system), seconds. */
  cpuSeconds: number;
}

/** CPU time all cores spent busy since boot (/proc/stat), seconds. */
function busySeconds(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = fields;
  return (user + nice + system + irq + softirq + (steal ?? 0)) / 100;
}

/** A synthetic alpaca dataset: long instruction/output texts of common words, cut to cutoff_len by the template. */
function datasetDir(): string {
  const dir = join(tmpdir(), 'tunekit-bench-memory-data');
  mkdirSync(dir, { recursive: true });
  const words = 'the river stone honey candle light forest ocean music bread green orange window summer mountain water fire paper garden silver'.split(' ');
  let state = 12345;
  const next = () => {
    state = (state * 1103515245 + 12345) >>> 0;
    return state;
  };
  const text = (n: number) => Array.from({ length: n }, () => words[next() % words.length]).join(' ');
  const rows = Array.from({ length: 32 }, () => ({ instruction: `Repeat after me: ${text(300)}`, input: '', output: text(300) }));
  writeFileSync(join(dir, 'bench_memory.json'), JSON.stringify(rows));
  writeFileSync(join(dir, 'dataset_info.json'), JSON.stringify({ bench_memory: { file_name: 'bench_memory.json' } }));
  return dir;
}

function commonOverrides(modelDir: string, dataDir: string, outputDir: string): string[] {
  return [
    'stage=sft',
    'do_train=true',
    `model_name_or_path=${modelDir}`,
    'dataset=bench_memory',
    `dataset_dir=${dataDir}`,
    'template=llama3',
    `cutoff_len=${SEQ}`,
    `output_dir=${outputDir}`,
    'overwrite_output_dir=true',
    `per_device_train_batch_size=${BATCH}`,
    'gradient_accumulation_steps=1',
    `max_steps=${STEPS}`,
    'learning_rate=1.0e-4',
    'lr_scheduler_type=constant',
    'logging_steps=1',
    'save_strategy=no',
    'do_eval=false',
    'eval_strategy=no',
    'plot_loss=false',
    'disable_shuffling=true',
    'optim=adamw_torch',
    `cpu_threads=${threads()}`,
  ];
}

/** The child: `tunekit train` through the CLI's main, timing each progress line, then the peak RSS. */
async function child(mode: Mode, modelDir: string, dataDir: string): Promise<void> {
  const outputDir = join(tmpdir(), `tunekit-bench-memory-${mode}`);
  const lines: string[] = [];
  const stepAt: Record<number, number> = {};
  const started = performance.now();
  const write = process.stdout.write.bind(process.stdout);
  const capture = (text: string) => {
    for (const line of text.split('\n')) {
      if (!line) continue;
      lines.push(line);
      const step = /^\[\s*(\d+)\/\d+\s/.exec(line);
      if (step) stepAt[Number(step[1])] = performance.now() - started;
    }
  };
  // The trainer's progress goes to process.stdout (one plain line per logging step when it is not a TTY).
  process.stdout.write = ((chunk: string | Uint8Array) => {
    capture(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return true;
  }) as typeof process.stdout.write;
  const io = { out: capture, err: (text: string) => capture(text) };
  let code = 1;
  let error: string | undefined;
  try {
    const cli = require(CLI_MAIN) as { main(argv: string[], io: unknown): Promise<number> };
    code = await cli.main(['train', ...commonOverrides(modelDir, dataDir, outputDir), ...MODES[mode].overrides], io);
  } catch (e) {
    error = (e as Error).stack ?? String(e);
  }
  const peakMb = peakRssMb();
  process.stdout.write = write;
  const tokensAt: Record<number, number> = {};
  const losses: number[] = [];
  const logFile = join(outputDir, 'trainer_log.jsonl');
  if (existsSync(logFile)) {
    for (const line of readFileSync(logFile, 'utf8').trim().split('\n')) {
      const entry = JSON.parse(line) as { current_steps: number; loss?: number; total_tokens?: number };
      if (entry.loss !== undefined) losses.push(entry.loss);
      if (entry.total_tokens !== undefined) tokensAt[entry.current_steps] = entry.total_tokens;
    }
  }
  const state = lines.map((l) => /optimizer state: (\d+) tensors, ([\d.]+) MiB/.exec(l)).find((m) => m);
  const trainable = lines.map((l) => /trainable params: ([\d,]+)/.exec(l)).find((m) => m)?.[1];
  rmSync(outputDir, { recursive: true, force: true });
  const cpu = process.cpuUsage();
  const result: ChildResult = { cpuSeconds: (cpu.user + cpu.system) / 1e6, code, peakMb, stepAt, tokensAt, losses, stateTensors: state ? Number(state[1]) : undefined, stateMiB: state ? Number(state[2]) : undefined, trainable, lines, error };
  write(`${JSON.stringify(result)}\n`);
}

/** The base weights as the model stores them: float32, or for QLoRA nf4 codes + a float32 absmax per 64 values. */
function baseWeightMiB(modelDir: string, quantized: boolean): number {
  const specs = parameterSpecs(readModelConfig(modelDir));
  const q = new Set(quantized ? quantizableWeights(specs.map((s) => s.name)) : []);
  let bytes = 0;
  for (const spec of specs) {
    const numel = spec.shape.reduce((a, b) => a * b, 1);
    bytes += q.has(spec.name) ? Math.ceil(numel / 64) * (32 + 4) : numel * 4;
  }
  return bytes / 2 ** 20;
}

/** Waits (up to 2 minutes) until other processes use less than a third of a core, so runs do not share the cores. */
function waitForIdle(): void {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const before = busySeconds();
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000);
    const busy = (busySeconds() - before) / 3;
    if (busy < 0.33 || Date.now() > deadline) return;
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
}

interface Measured {
  mode: Mode;
  peakMb: number;
  tokensPerSecond: number;
  firstStepS: number;
  slowestStepS: number;
  stateMiB: number | undefined;
  baseMiB: number;
  trainable: string;
  firstLoss: number;
  lastLoss: number;
  wallS: number;
  /** Cores kept busy by other processes during the run, on average (other work on the 2 cores skews tokens/s). */
  otherCores: number;
  /** Seconds of each step (step 1 from the start of the run: loading, preprocessing, building the programs). */
  stepS: number[];
}

function measure(mode: Mode, modelDir: string, dataDir: string): Measured {
  const started = Date.now();
  const busyBefore = busySeconds();
  const run = spawnSync(process.execPath, [__filename, '--child', mode, modelDir, dataDir], { cwd: REPO, encoding: 'utf8', maxBuffer: 1 << 26 });
  const last = run.stdout.trim().split('\n').pop() ?? '';
  let result: ChildResult;
  try {
    result = JSON.parse(last) as ChildResult;
  } catch {
    throw new Error(`${mode}: the run printed no result (exit ${run.status}, signal ${run.signal}):\n${run.stderr}\n${run.stdout.slice(-4000)}`);
  }
  if (result.code !== 0 || result.error) throw new Error(`${mode}: tunekit train exited ${result.code}:\n${result.error ?? ''}\n${result.lines.slice(-30).join('\n')}\n${run.stderr}`);
  const times: number[] = [];
  for (let step = 1; step <= STEPS; step++) {
    if (result.stepAt[step] === undefined) throw new Error(`${mode}: no progress line for step ${step}:\n${result.lines.join('\n')}`);
    times.push(result.stepAt[step] - (step > 1 ? result.stepAt[step - 1] : 0));
  }
  const measured = times.slice(WARMUP);
  const tokens = result.tokensAt[STEPS] !== undefined && result.tokensAt[WARMUP] !== undefined ? (result.tokensAt[STEPS] - result.tokensAt[WARMUP]) / (STEPS - WARMUP) : BATCH * SEQ;
  return {
    mode,
    peakMb: result.peakMb,
    tokensPerSecond: (tokens * 1000) / median(measured),
    firstStepS: times[0] / 1000,
    slowestStepS: Math.max(...measured) / 1000,
    stateMiB: result.stateMiB,
    baseMiB: baseWeightMiB(modelDir, mode === 'qlora'),
    trainable: result.trainable ?? '?',
    firstLoss: result.losses[0],
    lastLoss: result.losses[result.losses.length - 1],
    wallS: (Date.now() - started) / 1000,
    stepS: times.map((t) => t / 1000),
    otherCores: Math.max(0, busySeconds() - busyBefore - result.cpuSeconds) / ((Date.now() - started) / 1000),
  };
}

function ratio(value: number | undefined, base: number | undefined): string {
  return value === undefined || base === undefined ? '-' : (value / base).toFixed(2);
}

function main(): void {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    void child(args[1] as Mode, args[2], args[3]);
    return;
  }
  if (!existsSync(CLI_MAIN)) throw new Error('run `pnpm build` first: the benchmark runs the built CLI');
  const modes = (process.env.TUNEKIT_BENCH_MODES ?? Object.keys(MODES).join(',')).split(',').map((m) => m.trim()) as Mode[];
  for (const mode of modes) if (!(mode in MODES)) throw new Error(`unknown mode '${mode}' in TUNEKIT_BENCH_MODES (modes: ${Object.keys(MODES).join(', ')})`);
  const modelDir = smollmModelDir();
  const dataDir = datasetDir();
  console.log(
    `Memory-efficient training, SmolLM-135M shape (random weights), \`tunekit train\` sft, batch ${BATCH} x ${SEQ}, ${STEPS} steps (tokens/s: median of steps ${WARMUP + 1}-${STEPS}), fp32, gradient checkpointing, ${threads()} threads, ${cpus()[0]?.model}\n`,
  );
  console.log(row(['mode', 'trainable params', 'peak RSS MB', 'tokens/s', 'optimizer state MiB', 'base weights MiB', 'RSS / full', 'tokens/s / full', 'state / full', 'time to step 1 s', 'slowest measured step s', 'loss step 1 -> 6']));
  console.log(row(Array(12).fill('---')));
  const results: Measured[] = [];
  const retries = Number(process.env.TUNEKIT_BENCH_RETRIES ?? 2);
  for (const mode of modes) {
    let r: Measured | undefined;
    // A run that shared the cores with other work (more than a third of a core on average) is run again, at most
    // `retries` times; the least disturbed run is kept.
    for (let attempt = 0; attempt <= retries && !(r && r.otherCores < 0.33); attempt++) {
      waitForIdle();
      const next = measure(mode, modelDir, dataDir);
      if (!r || next.otherCores < r.otherCores) r = next;
    }
    if (!r) continue;
    results.push(r);
    const full = results.find((x) => x.mode === 'full');
    console.log(
      row([
        MODES[mode].label,
        r.trainable,
        r.peakMb.toFixed(0),
        r.tokensPerSecond.toFixed(1),
        r.stateMiB === undefined ? '?' : r.stateMiB.toFixed(1),
        r.baseMiB.toFixed(1),
        ratio(r.peakMb, full?.peakMb),
        ratio(r.tokensPerSecond, full?.tokensPerSecond),
        ratio(r.stateMiB, full?.stateMiB),
        r.firstStepS.toFixed(1),
        r.slowestStepS.toFixed(1),
        `${r.firstLoss.toFixed(3)} -> ${r.lastLoss.toFixed(3)}`,
      ]),
    );
  }
  const by = (mode: Mode) => results.find((r) => r.mode === mode);
  const [full, galore, badam, lora, qlora] = [by('full'), by('galore'), by('badam'), by('lora'), by('qlora')];
  console.log('');
  for (const [label, r] of [['GaLore', galore], ['BAdam', badam]] as const) {
    if (r && full) console.log(`${label} optimizer state / full AdamW: ${ratio(r.stateMiB, full.stateMiB)} (${r.stateMiB} / ${full.stateMiB} MiB), peak RSS ${ratio(r.peakMb, full.peakMb)}`);
  }
  if (qlora && lora) console.log(`QLoRA base weights / LoRA: ${ratio(qlora.baseMiB, lora.baseMiB)} (${qlora.baseMiB.toFixed(1)} / ${lora.baseMiB.toFixed(1)} MiB), peak RSS ${ratio(qlora.peakMb, lora.peakMb)}, tokens/s ${ratio(qlora.tokensPerSecond, lora.tokensPerSecond)}`);
  for (const r of results) console.log(`${r.mode} step times s: ${r.stepS.map((t) => t.toFixed(1)).join(', ')}`);
  console.log(`wall time (cores busy with other processes meanwhile): ${results.map((r) => `${r.mode} ${r.wallS.toFixed(0)} s (${r.otherCores.toFixed(2)})`).join(', ')}`);
}

main();
