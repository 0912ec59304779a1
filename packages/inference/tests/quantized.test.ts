import * as path from 'path';
import { CausalLM, LoraAdapter, createRng, peftNames, quantize } from '@tunekit/models';
import { GenerationEngine } from '../src';
import { FullForward, removeTempDirs, tempDir, tinyModelDir } from './helpers';

afterAll(removeTempDirs);

const PROMPTS = [
  [11, 42, 7, 99, 5, 23, 64],
  [3, 200],
];

function maxAbsDiff(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  let max = 0;
  a.forEach((row, i) => row.forEach((v, j) => (max = Math.max(max, Math.abs(v - b[i][j])))));
  return max;
}

describe('a quantized base (quantization_bit) at inference', () => {
  // hidden 64: the linear weights' rows hold whole 64-value quantization blocks.
  const modelDir = tinyModelDir({ hidden: 64 });

  it('runs the dequantized weights the QLoRA graphs train on, with a trained adapter kept separate', async () => {
    const adapter = LoraAdapter.init(CausalLM.load(modelDir), { r: 4, alpha: 8, useRslora: false, targetModules: 'all-linear' }, 3);
    const rng = createRng(9);
    const values = new Map<string, Float32Array>();
    for (const w of adapter.modules.values()) {
      const n = peftNames(w.module);
      values.set(n.a, w.a);
      values.set(n.b, w.b.map(() => 0.2 * (2 * rng.uniform() - 1)));
    }
    const adapterDir = path.join(tempDir(), 'adapter');
    adapter.withValues(values).save(adapterDir);

    const lines: string[] = [];
    const engine = await GenerationEngine.load({ modelDir, adapters: [adapterDir], quantization: { bits: 4, type: 'nf4' }, log: (l) => lines.push(l) });
    expect(lines.join('\n')).toMatch(/quantized 14 linear weights to nf4/);

    // The reference: the same quantized base with the adapter applied, by full forward passes.
    const reference = CausalLM.load(modelDir);
    quantize(reference, { bits: 4, type: 'nf4', blockSize: 64 });
    LoraAdapter.load(adapterDir, reference).apply(reference, { trainable: false });
    const full = await FullForward.create(reference);
    const want = await Promise.all(PROMPTS.map((p) => full.lastLogits(p)));
    expect(maxAbsDiff(await engine.promptLogits(PROMPTS), want)).toBeLessThan(1e-4);

    // ... and it differs from the full-precision base by the quantization error: less with 8 bits than with 4.
    const fp32 = await GenerationEngine.load({ modelDir, adapters: [adapterDir] });
    const int8 = await GenerationEngine.load({ modelDir, adapters: [adapterDir], quantization: { bits: 8 } });
    const exact = await fp32.promptLogits(PROMPTS);
    const gap4 = maxAbsDiff(await engine.promptLogits(PROMPTS), exact);
    const gap8 = maxAbsDiff(await int8.promptLogits(PROMPTS), exact);
    expect(gap8).toBeGreaterThan(1e-5);
    expect(gap8).toBeLessThan(gap4 / 4);
    await Promise.all([engine.release(), fp32.release(), int8.release(), full.release()]);
  });

  it('takes one adapter, as LLaMA-Factory does', async () => {
    await expect(GenerationEngine.load({ modelDir, adapters: ['a', 'b'], quantization: { bits: 8 } })).rejects.toThrow(/takes a single adapter/);
  });
});
