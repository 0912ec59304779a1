import { Graph, Session, grad, type HostTensor, type Tensor } from '@tunekit/graph';

export type Value = number | number[] | number[][];

function flatten(value: Value): { data: number[]; dims: number[] } {
  if (typeof value === 'number') return { data: [value], dims: [] };
  if (typeof value[0] === 'number') return { data: value as number[], dims: [value.length] };
  const rows = value as number[][];
  return { data: rows.flat(), dims: [rows.length, rows[0].length] };
}

/**
 * Builds `build` over float64 inputs of the given values, runs it once and returns each named output (as a flat
 * number array) plus d outputs.loss / d input for the inputs named in `gradients`.
 */
export async function runGraph(
  values: Record<string, Value>,
  build: (inputs: Record<string, Tensor>) => Record<string, Tensor>,
  gradients: readonly string[] = [],
): Promise<Record<string, number[]>> {
  const g = new Graph('rl-test');
  const inputs: Record<string, Tensor> = {};
  const feeds: Record<string, HostTensor> = {};
  for (const [name, value] of Object.entries(values)) {
    const { data, dims } = flatten(value);
    inputs[name] = g.input(name, 'float64', dims);
    feeds[name] = { dtype: 'float64', dims, data: Float64Array.from(data) };
  }
  const outputs = build(inputs);
  for (const [name, t] of Object.entries(outputs)) g.output(t, name);
  if (gradients.length) grad(outputs.loss, gradients.map((name) => inputs[name])).forEach((t, i) => g.output(t, `grad:${gradients[i]}`));
  const session = await Session.create(g, { intraOpNumThreads: 1 });
  try {
    const out = await session.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([name, t]) => [name, Array.from(t.data as Float64Array, Number)]));
  } finally {
    await session.release();
  }
}
