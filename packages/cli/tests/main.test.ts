import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../src';

const standIns = join(__dirname, 'fixtures', 'stand-in-plugins.js');

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (text) => (out += `${text}\n`), err: (text) => (err += `${text}\n`) });
  return { code, out, err };
}

function configFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'tunekit-cli-'));
  const path = join(dir, 'config.yaml');
  writeFileSync(path, text);
  return path;
}

describe('tunekit CLI', () => {
  it('lists its commands', async () => {
    const { code, out } = await run('help');
    expect(code).toBe(0);
    for (const name of ['train', 'chat', 'api', 'export', 'eval', 'validate', 'plugins', 'env', 'version']) expect(out).toContain(`  ${name}`);
  });

  it('refuses an unknown command', async () => {
    const { code, err } = await run('trian');
    expect(code).toBe(2);
    expect(err).toContain("Unknown command 'trian'");
  });

  it('says plainly which commands are not built yet', async () => {
    for (const name of ['eval']) {
      const { code, err } = await run(name, 'config.yaml');
      expect(code).toBe(2);
      expect(err).toMatch(/is not built yet/);
    }
  });

  it('prints the resolved config with defaults', async () => {
    const path = configFile(`plugins: [${JSON.stringify(standIns)}]\nmodel_name_or_path: models/tiny\nstage: sft\nlora_rank: 16\ntemplate: llama3\n`);
    const { code, out, err } = await run('validate', path);
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out).toMatch(/^lora_rank: 16$/m);
    expect(out).toMatch(/^lora_target:\n  - all$/m);
    expect(out).toMatch(/^learning_rate: 0\.00005$|^learning_rate: 5e-5$/m);
  });

  it('applies key=value and --key value overrides after the file', async () => {
    const path = configFile(`plugins: [${JSON.stringify(standIns)}]\nmodel_name_or_path: models/tiny\nlora_rank: 16\n`);
    const { code, out } = await run('validate', path, 'lora_rank=4', '--learning_rate', '2e-4');
    expect(code).toBe(0);
    expect(out).toMatch(/^lora_rank: 4$/m);
    expect(out).toMatch(/^learning_rate: 0\.0002$/m);
  });

  it('reports every problem at once with exit code 2', async () => {
    const path = configFile(`plugins: [${JSON.stringify(standIns)}]\nmodel_name_or_path: models/tiny\nlora_rank: 0\nlerning_rate: 1\nlearning_rate: fast\n`);
    const { code, err } = await run('validate', path);
    expect(code).toBe(2);
    expect(err).toContain('The config has 3 problems:');
    expect(err).toContain("lerning_rate: unknown key; did you mean 'learning_rate'?");
    expect(err).toMatch(/lora_rank: .*>=\s*1.*got 0/);
    expect(err).toMatch(/learning_rate: .*got "fast"/);
  });

  it('trains through the stage the config selects', async () => {
    const path = configFile(`plugins: [${JSON.stringify(standIns)}]\nmodel_name_or_path: models/tiny\nstage: stand_in\nlora_rank: 32\n`);
    const { code, out } = await run('train', path);
    expect(code).toBe(0);
    expect(out).toContain('stand-in stage ran with lora_rank 32');
  });

  it('prints a learning-rate schedule through the selected scheduler', async () => {
    const path = configFile(`plugins: [${JSON.stringify(standIns)}]\nmodel_name_or_path: models/tiny\nlearning_rate: 1.0\n`);
    const { code, out } = await run('schedule', path, '--steps', '3');
    expect(code).toBe(0);
    expect(out.trim().split('\n')).toEqual(['step\tlearning_rate', '0\t1.00000', '1\t0.666667', '2\t0.333333']);
  });

  it('lists plugins and their contributions', async () => {
    const path = configFile(`plugins: [${JSON.stringify(standIns)}]\nmodel_name_or_path: models/tiny\n`);
    const { code, out } = await run('plugins', path);
    expect(code).toBe(0);
    expect(out).toContain('@test/stand-ins');
    expect(out).toMatch(/training stage \(stage\):\n[\s\S]*stand_in\s+@test\/stand-ins/);
    expect(out).toMatch(/lora\s+@tunekit\/plugin-lora/);
    expect(out).toMatch(/cosine\s+@tunekit\/plugin-lr-schedulers/);
  });

  it('reports the runtime and its execution providers', async () => {
    const { code, out } = await run('env');
    expect(code).toBe(0);
    expect(out).toMatch(/onnxruntime-node: 1\.30\.0/);
    expect(out).toMatch(/cpu\s+usable/);
    expect(out).toMatch(/cuda\s+unusable/);
  });
});
