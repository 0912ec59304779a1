import * as fs from 'node:fs';
import * as path from 'node:path';
import type { UnsupervisedExample } from '@tunekit/data';
import { GenerationEngine, generationSettingsFrom } from '@tunekit/inference';
import { TunekitError, type ResolvedConfig, type Template, type TokenizerLike } from '@tunekit/kernel';
import { writeFileAtomic } from '../outputs/atomic-write';
import { saveMetrics, speedMetrics } from '../outputs/metrics';
import { hasCjk, similarityMetrics } from '../outputs/similarity';

/** Where the model to predict with lives: the run's output (after training) or the configured model and adapters. */
function predictionModel(config: ResolvedConfig, trained: boolean): { modelDir: string; adapters: string[] } {
  const outputDir = String(config.output_dir);
  const adapters = Array.isArray(config.adapter_name_or_path) ? config.adapter_name_or_path.map(String) : [];
  if (!trained) return { modelDir: String(config.model_name_or_path), adapters };
  if (fs.existsSync(path.join(outputDir, 'adapter_config.json'))) {
    // The trained adapter sits on the adapters it was stacked on (all but the last, unless create_new_adapter).
    const below = config.create_new_adapter === true ? adapters : adapters.slice(0, -1);
    return { modelDir: String(config.model_name_or_path), adapters: [...below, outputDir] };
  }
  return { modelDir: outputDir, adapters: [] };
}

/**
 * LLaMA-Factory's do_predict with predict_with_generate: generate an answer for every prompt of the evaluation set
 * (batches of per_device_eval_batch_size, left-padded, with the generation keys) and write
 * generated_predictions.jsonl ({"prompt", "predict", "label"} per line, as LLaMA-Factory writes it) and
 * predict_results.json with LLaMA-Factory's text metrics (predict_bleu-4, predict_rouge-1/2/l; see ../outputs/similarity).
 */
export async function predictWithGenerate(options: {
  config: ResolvedConfig;
  examples: readonly UnsupervisedExample[];
  tokenizer: TokenizerLike;
  template: Template;
  trained: boolean;
  backendOptions?: Readonly<Record<string, unknown>>;
  log: (line: string) => void;
}): Promise<void> {
  const { config, examples, tokenizer, template, log } = options;
  if (!examples.length) throw new TunekitError('do_predict: the evaluation set is empty; set eval_dataset or val_size.');
  const { modelDir, adapters } = predictionModel(config, options.trained);
  const engine = await GenerationEngine.load({ modelDir, adapters, seed: Number(config.seed ?? 42), backendOptions: options.backendOptions, log });
  const settings = { ...generationSettingsFrom(config), stopStrings: template.stopWords };
  const batchSize = Number(config.per_device_eval_batch_size ?? 8);
  const skipSpecialTokens = config.skip_special_tokens !== false;
  const lines: string[] = [];
  const pairs: { predict: string; label: string }[] = [];
  const started = Date.now();
  try {
    for (let i = 0; i < examples.length; i += batchSize) {
      const batch = examples.slice(i, i + batchSize);
      const results = await engine.generate(batch.map((e) => Array.from(e.input_ids)), settings);
      batch.forEach((example, j) => {
        const labels = Array.from(example.labels).filter((id) => id >= 0);
        const pair = {
          predict: results[j].text ?? tokenizer.decode(results[j].tokenIds, { skipSpecialTokens }),
          label: tokenizer.decode(labels, { skipSpecialTokens }),
        };
        pairs.push(pair);
        lines.push(JSON.stringify({ prompt: tokenizer.decode(Array.from(example.input_ids), { skipSpecialTokens: false }), ...pair }));
      });
      log(`predict: ${Math.min(i + batchSize, examples.length)}/${examples.length}`);
    }
  } finally {
    await engine.release();
  }
  const outputDir = String(config.output_dir);
  fs.mkdirSync(outputDir, { recursive: true });
  writeFileAtomic(path.join(outputDir, 'generated_predictions.jsonl'), `${lines.join('\n')}\n`);
  const seconds = (Date.now() - started) / 1000;
  const similarity = similarityMetrics(pairs);
  saveMetrics(outputDir, 'predict', { ...similarity, ...speedMetrics('predict', seconds, { samples: examples.length, steps: Math.ceil(examples.length / batchSize) }) });
  log(`predict_bleu-4 ${similarity['predict_bleu-4'].toFixed(4)}, predict_rouge-1 ${similarity['predict_rouge-1'].toFixed(4)}, predict_rouge-l ${similarity['predict_rouge-l'].toFixed(4)}`);
  if (pairs.some((pair) => hasCjk(pair.label))) {
    log('ROUGE on CJK text: tunekit counts each CJK character as a word, where LLaMA-Factory segments with jieba; predict_rouge-* differ from its figures (predict_bleu-4, on characters, does not).');
  }
  log(`Wrote ${lines.length} predictions to ${path.join(outputDir, 'generated_predictions.jsonl')}.`);
}
