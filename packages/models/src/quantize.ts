import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { DType, ExternalData, Graph, Tensor, readSafetensors } from '@tunekit/graph';
import { TunekitError } from '@tunekit/kernel';
import { defaultCacheDir, WeightSource } from './weights';

/**
 * The 4-bit code books (values in [-1, 1], multiplied by each block's absmax):
 * - `int4`: the uniform grid (i - 8) / 7, i.e. uint4 with zero point 8 and scale absmax / 7 (absmax maps to code 15,
 *   so code 0 = -8/7 is never chosen: symmetric absmax int4).
 * - `nf4`: the 16 NormalFloat values of QLoRA / bitsandbytes (`create_normal_map`), sorted.
 * - `fp4`: bitsandbytes' FP4 (E2M1) values, normalised to a maximum of 1, sorted (+0 and -0 both present).
 */
export const NF4_CODE: readonly number[] = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
  -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];
const FP4_POSITIVE = [0, 0.0052083333, 0.16666667, 0.25, 0.33333333, 0.5, 0.66666667, 1.0];
export const FP4_CODE: readonly number[] = [...FP4_POSITIVE.slice(1).reverse().map((v) => -v), -0, ...FP4_POSITIVE];
export const INT4_CODE: readonly number[] = Array.from({ length: 16 }, (_, i) => (i - 8) / 7);

export type QuantizationType = 'int8' | 'int4' | 'nf4' | 'fp4';

export interface QuantizeOptions {
  /** 8: symmetric absmax int8; 4: a 16-value code book (`type`), two codes per byte. */
  readonly bits: 4 | 8;
  /** The 4-bit code book (default nf4, as bitsandbytes / LLaMA-Factory). Ignored for 8 bits. */
  readonly type?: 'int4' | 'nf4' | 'fp4';
  /** Values per absmax block (default 64, bitsandbytes' 4-bit block size); even. */
  readonly blockSize?: number;
  /** Where the quantized cache file goes for file-backed weights (default: the model's `.tunekit-cache`). */
  readonly cacheDir?: string;
  readonly log?: (line: string) => void;
}

/**
 * One quantized tensor: codes (int8 values, or packed 4-bit code-book indices, low nibble first) and a float32 scale
 * per block (int8: absmax / 127; 4-bit: the absmax).
 */
interface QuantizedTensor {
  readonly shape: readonly number[];
  readonly numel: number;
  readonly blocks: number;
  readonly codes: Int8Array | Uint8Array | ExternalData;
  readonly scales: Float32Array | ExternalData;
}

function codeBook(type: QuantizationType): readonly number[] | undefined {
  return type === 'nf4' ? NF4_CODE : type === 'fp4' ? FP4_CODE : type === 'int4' ? INT4_CODE : undefined;
}

/** Index of the code nearest to v (codes sorted ascending). */
function nearest(code: Float32Array, v: number): number {
  let best = 0;
  let bestErr = Infinity;
  for (let i = 0; i < code.length; i++) {
    const err = Math.abs(code[i] - v);
    if (err < bestErr) {
      bestErr = err;
      best = i;
    }
  }
  return best;
}

/**
 * Blockwise quantization of one tensor, bitsandbytes-style: the tensor is flattened (row-major, so for a [out, in]
 * weight with `in` a multiple of the block size every block lies along the input dimension of one row), cut into
 * blocks of `blockSize` (the last one zero-padded) and each block stored as codes and one float32 scale.
 * int8: scale = absmax / 127, q = round(w / scale), dequantized q * scale. 4-bit: scale = absmax, the code is the
 * index of the nearest code-book value to w / absmax, dequantized code[index] * absmax.
 */
export function quantizeBlockwise(values: Float32Array, type: QuantizationType, blockSize: number): { codes: Int8Array | Uint8Array; scales: Float32Array } {
  if (blockSize < 2 || blockSize % 2 !== 0) throw new TunekitError(`quantization block size must be an even number >= 2 (got ${blockSize})`);
  const blocks = Math.ceil(values.length / blockSize);
  const absmax = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    let m = 0;
    for (let i = b * blockSize; i < Math.min(values.length, (b + 1) * blockSize); i++) m = Math.max(m, Math.abs(values[i]));
    absmax[b] = m;
  }
  const book = codeBook(type);
  if (!book) {
    const scales = absmax.map((a) => a / 127);
    const codes = new Int8Array(blocks * blockSize);
    for (let i = 0; i < values.length; i++) {
      const scale = scales[Math.floor(i / blockSize)];
      codes[i] = scale === 0 ? 0 : Math.max(-127, Math.min(127, Math.round(values[i] / scale)));
    }
    return { codes, scales };
  }
  const code = Float32Array.from(book);
  const zero = nearest(code, 0);
  const codes = new Uint8Array((blocks * blockSize) / 2);
  for (let i = 0; i < blocks * blockSize; i++) {
    const a = absmax[Math.floor(i / blockSize)];
    const index = i >= values.length || a === 0 ? zero : nearest(code, values[i] / a);
    codes[i >> 1] |= i & 1 ? index << 4 : index;
  }
  return { codes, scales: absmax };
}

/** Host dequantization with the graph's float32 arithmetic (code * scale rounded once to float32). */
export function dequantizeBlockwise(codes: Int8Array | Uint8Array, scales: Float32Array, type: QuantizationType, blockSize: number, numel: number): Float32Array {
  const out = new Float32Array(numel);
  const book = codeBook(type);
  if (!book) {
    for (let i = 0; i < numel; i++) out[i] = Math.fround(codes[i] * scales[Math.floor(i / blockSize)]);
    return out;
  }
  const code = Float32Array.from(book);
  for (let i = 0; i < numel; i++) out[i] = Math.fround(code[(codes[i >> 1] >> ((i & 1) * 4)) & 15] * scales[Math.floor(i / blockSize)]);
  return out;
}

/**
 * The quantization LLaMA-Factory's `quantization_bit` / `quantization_type` values select (bitsandbytes' block of 64,
 * nf4 unless fp4), or undefined when `bits` is not 4 or 8 (no quantization_bit).
 */
export function quantizationSettings(bits: unknown, type: unknown): { bits: 4 | 8; type: 'nf4' | 'fp4'; blockSize: number } | undefined {
  if (bits !== 4 && bits !== 8) return undefined;
  return { bits, type: type === 'fp4' ? 'fp4' : 'nf4', blockSize: 64 };
}

/** The decoder layers' linear weights (what bitsandbytes replaces): not embeddings, norms or lm_head. */
export function quantizableWeights(names: readonly string[]): string[] {
  return names.filter((n) => /^model\.layers\.\d+\.(self_attn|mlp)\.[a-z_]+_proj\.weight$/.test(n));
}

function readBytes(ref: ExternalData): Buffer {
  const fd = fs.openSync(ref.path, 'r');
  try {
    const buf = Buffer.alloc(ref.length);
    fs.readSync(fd, buf, 0, ref.length, ref.offset);
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Frozen base weights stored quantized. As a `WeightSource` it reads the dequantized values (so host-side users of
 * the base weights, e.g. DoRA's row norms, see what the graph sees); `dequantize(g, name)` adds the quantized
 * initializers and the dequantization nodes (DequantizeLinear, then for 4 bits a code-book Gather and Mul by the
 * block absmax) to a graph.
 */
export class QuantizedWeights implements WeightSource {
  private constructor(
    readonly type: QuantizationType,
    readonly blockSize: number,
    private readonly tensors: Map<string, QuantizedTensor>,
    /** The cache file holding the codes, when the source was on disk. */
    readonly file: string | undefined,
  ) {}

  /**
   * Quantizes `names` of `source`. File-backed sources are written once (tensor by tensor) to a cache safetensors
   * file keyed by the source bytes' location, size and mtime and the format, and reused on later runs.
   */
  static build(source: WeightSource, names: readonly string[], options: QuantizeOptions): QuantizedWeights {
    const type: QuantizationType = options.bits === 8 ? 'int8' : (options.type ?? 'nf4');
    if (options.bits !== 8 && options.bits !== 4) throw new TunekitError(`quantization bits must be 4 or 8 (got ${String(options.bits)})`);
    const blockSize = options.blockSize ?? 64;
    if (!Number.isInteger(blockSize) || blockSize < 2 || blockSize % 2 !== 0) throw new TunekitError(`quantization block size must be an even integer >= 2 (got ${blockSize})`);
    const geometry = names.map((name) => {
      const shape = source.shape(name);
      const numel = shape.reduce((a, b) => a * b, 1);
      const blocks = Math.ceil(numel / blockSize);
      return { name, shape, numel, blocks, codeBytes: type === 'int8' ? blocks * blockSize : (blocks * blockSize) / 2 };
    });
    const refs = names.map((n) => source.external(n));
    const tensors = new Map<string, QuantizedTensor>();
    if (refs.length === 0 || refs.some((r) => r === undefined)) {
      for (const g of geometry) {
        const { codes, scales } = quantizeBlockwise(source.read(g.name), type, blockSize);
        tensors.set(g.name, { shape: g.shape, numel: g.numel, blocks: g.blocks, codes, scales });
      }
      return new QuantizedWeights(type, blockSize, tensors, undefined);
    }

    const stamp = crypto.createHash('sha256');
    stamp.update(JSON.stringify({ type, blockSize, version: 2 }));
    for (let i = 0; i < names.length; i++) {
      const ref = refs[i]!;
      const st = fs.statSync(ref.path);
      stamp.update(JSON.stringify([names[i], path.resolve(ref.path), ref.offset, ref.length, st.size, Math.floor(st.mtimeMs)]));
    }
    const key = stamp.digest('hex').slice(0, 16);
    const firstDir = path.dirname(refs[0]!.path);
    const cacheDir = options.cacheDir ?? (path.basename(firstDir) === '.tunekit-cache' ? firstDir : defaultCacheDir(firstDir));
    fs.mkdirSync(cacheDir, { recursive: true });
    const file = path.join(cacheDir, `quantized-${type}-b${blockSize}-${key}.safetensors`);
    let index: ReturnType<typeof readSafetensors> | undefined;
    if (fs.existsSync(file)) {
      try {
        index = readSafetensors(file);
        if (index.metadata['tunekit.quantized'] !== key) index = undefined;
      } catch {
        index = undefined; // rewritten below
      }
    }
    if (!index) {
      const started = Date.now();
      writeQuantizedFile(file, key, geometry, type, (name) => quantizeBlockwise(source.read(name), type, blockSize));
      index = readSafetensors(file);
      const fp32 = geometry.reduce((s, g) => s + 4 * g.numel, 0);
      const quantized = geometry.reduce((s, g) => s + g.codeBytes + 4 * g.blocks, 0);
      options.log?.(
        `quantized ${names.length} linear weights to ${type} (block ${blockSize}): ${(fp32 / 2 ** 20).toFixed(1)} MiB -> ${(quantized / 2 ** 20).toFixed(1)} MiB in ${Date.now() - started} ms; cached at ${file}`,
      );
    } else {
      options.log?.(`using the ${type} (block ${blockSize}) quantized base cached at ${file}`);
    }
    for (const g of geometry) {
      const codes = index.tensors.get(`${g.name}.codes`);
      const scales = index.tensors.get(`${g.name}.scales`);
      if (!codes || !scales) throw new TunekitError(`${file}: quantized tensor '${g.name}' is missing; delete the file to rebuild it`);
      tensors.set(g.name, { shape: g.shape, numel: g.numel, blocks: g.blocks, codes: codes.ref, scales: scales.ref });
    }
    return new QuantizedWeights(type, blockSize, tensors, file);
  }

  get names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  private get(name: string): QuantizedTensor {
    const t = this.tensors.get(name);
    if (!t) throw new TunekitError(`no quantized tensor named '${name}'`);
    return t;
  }

  shape(name: string): readonly number[] {
    return this.get(name).shape;
  }

  /** Quantized tensors never reach a graph as float32 initializers. */
  external(): undefined {
    return undefined;
  }

  /** The codes and block scales of one tensor (read from the cache file when on disk). */
  stored(name: string): { codes: Int8Array | Uint8Array; scales: Float32Array } {
    const t = this.get(name);
    const codes = ArrayBuffer.isView(t.codes) ? t.codes : (() => {
      const b = readBytes(t.codes);
      return this.type === 'int8' ? new Int8Array(b.buffer, b.byteOffset, b.length) : new Uint8Array(b.buffer, b.byteOffset, b.length);
    })();
    const scales = ArrayBuffer.isView(t.scales) ? t.scales : (() => {
      const b = readBytes(t.scales);
      const out = new Float32Array(b.length / 4);
      new Uint8Array(out.buffer).set(b);
      return out;
    })();
    return { codes, scales };
  }

  /** The dequantized values, computed on the host exactly as the graph computes them. */
  read(name: string): Float32Array {
    const { codes, scales } = this.stored(name);
    return dequantizeBlockwise(codes, scales, this.type, this.blockSize, this.get(name).numel);
  }

  /** Bytes the quantized tensors take (codes + scales) and what they would take as float32. */
  bytes(): { quantized: number; float32: number } {
    let quantized = 0;
    let float32 = 0;
    for (const t of this.tensors.values()) {
      const codeBytes = this.type === 'int8' ? t.blocks * this.blockSize : (t.blocks * this.blockSize) / 2;
      quantized += codeBytes + 4 * t.blocks;
      float32 += 4 * t.numel;
    }
    return { quantized, float32 };
  }

  /**
   * Adds `name`'s codes and scales as initializers of `g` and returns the dequantized float32 weight. Every chain
   * starts with a DequantizeLinear on the stored codes: onnxruntime's constant folding leaves DequantizeLinear alone
   * (its QDQ rule), so the weights stay quantized in the session and are dequantized transiently at each run instead
   * of being folded into float32 copies when the session is created. int8 is one per-axis DequantizeLinear (a scale
   * per block row); 4-bit turns the packed bytes into floats, splits the nibbles and looks them up in the code book.
   */
  dequantize(g: Graph, name: string): Tensor {
    const t = this.get(name);
    const bs = this.blockSize;
    const scales = g.initializer(`${name}.scales`, 'float32', [t.blocks], t.scales);
    let blocks: Tensor;
    if (this.type === 'int8') {
      const codes = g.initializer(`${name}.codes`, 'int8', [t.blocks, bs], t.codes);
      blocks = dequantizeLinear(g, codes, scales, 0);
    } else {
      // Two codes per byte, the first in the low nibble.
      const codes = g.initializer(`${name}.codes`, 'uint8', [t.blocks, bs / 2], t.codes);
      const bytes = dequantizeLinear(g, codes, g.constant(1));
      const high = g.Floor(g.Mul(bytes, 1 / 16));
      const low = g.Sub(bytes, g.Mul(high, 16));
      const indices = g.Cast(g.Reshape(g.Concat([g.Unsqueeze(low, [2]), g.Unsqueeze(high, [2])], 2), [t.blocks, bs]), 'int64');
      const book = g.constant(Float32Array.from(codeBook(this.type)!), 'float32', [16]);
      blocks = g.Mul(g.Gather(book, indices, 0), g.Reshape(scales, [t.blocks, 1]));
    }
    const padded = t.blocks * bs;
    let flat = g.Reshape(blocks, [padded]);
    if (padded !== t.numel) flat = g.Slice(flat, [0], [t.numel], [0]);
    return g.Reshape(flat, [...t.shape]);
  }
}

/** ONNX DequantizeLinear (zero point 0): x * scale, per tensor (scalar scale) or per slice along `axis`. */
function dequantizeLinear(g: Graph, x: Tensor, scale: Tensor, axis?: number): Tensor {
  return g.custom('DequantizeLinear', [x, scale], axis === undefined ? {} : { axis }, [{ dtype: 'float32', shape: x.shape }])[0];
}

function writeQuantizedFile(
  file: string,
  key: string,
  geometry: readonly { name: string; numel: number; blocks: number; codeBytes: number }[],
  type: QuantizationType,
  quantize: (name: string) => { codes: Int8Array | Uint8Array; scales: Float32Array },
): void {
  const header: Record<string, unknown> = { __metadata__: { 'tunekit.quantized': key, format: 'tunekit-blockwise', type } };
  let offset = 0;
  for (const g of geometry) {
    header[`${g.name}.codes`] = { dtype: type === 'int8' ? 'I8' : 'U8', shape: [g.codeBytes], data_offsets: [offset, offset + g.codeBytes] };
    offset += g.codeBytes;
    header[`${g.name}.scales`] = { dtype: 'F32', shape: [g.blocks], data_offsets: [offset, offset + 4 * g.blocks] };
    offset += 4 * g.blocks;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, json);
    for (const g of geometry) {
      const { codes, scales } = quantize(g.name);
      fs.writeSync(fd, new Uint8Array(codes.buffer, codes.byteOffset, codes.byteLength));
      fs.writeSync(fd, new Uint8Array(scales.buffer, scales.byteOffset, scales.byteLength));
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/**
 * QLoRA's base: the frozen linear weights of the decoder layers (not embeddings, norms or lm_head, as bitsandbytes
 * and LLaMA-Factory leave them) are stored blockwise-quantized and dequantized in the graph before their MatMul.
 * Call after loading (and after any `overrideWeights`), before building graphs; the weights must stay frozen.
 */
export function quantize(model: { weights: WeightSource; parameters(): { name: string }[]; useQuantizedWeights(q: QuantizedWeights): void }, options: QuantizeOptions): QuantizedWeights {
  const names = quantizableWeights(model.parameters().map((p) => p.name));
  const q = QuantizedWeights.build(model.weights, names, options);
  model.useQuantizedWeights(q);
  return q;
}
