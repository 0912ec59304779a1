import * as fs from 'fs';
import {
  INFERENCE_BACKEND,
  TEMPLATE,
  TunekitError,
  resolveContribution,
  type ChatMessage,
  type DependencyContainer,
  type ResolvedConfig,
  type Template,
} from '@tunekit/kernel';
import { GenerationEngine, generationSettingsFrom, type ChatCompletion, type GenerationSettings } from '@tunekit/inference';
import { quantizationSettings } from '@tunekit/models';

/** What one chat turn may change besides the messages (an API request's parameters). */
export interface ChatTurnOptions {
  readonly system?: string;
  /** Tool definitions as a JSON string (LLaMA-Factory's `tools`). */
  readonly tools?: string;
  /** Overrides of the config's generation settings (temperature, topP, maxNewTokens, stopStrings, seed...). */
  readonly settings?: Partial<GenerationSettings>;
}

/** A config's model, adapters and template with its generation settings: what `tunekit chat` and `tunekit api` serve. */
export class ChatModel {
  constructor(
    readonly engine: GenerationEngine,
    readonly template: Template,
    /** The template id, for messages. */
    readonly templateId: string,
    /** The config's generation keys; a turn's options override them. */
    readonly settings: GenerationSettings,
    readonly enableThinking = true,
  ) {}

  /**
   * Loads `model_name_or_path` with `adapter_name_or_path` on the config's `backend`, and the chat template as
   * LLaMA-Factory picks it: `template`, else the tokenizer's own chat template (`jinja`), else `empty`.
   */
  static async fromConfig(run: DependencyContainer, config: ResolvedConfig, log?: (line: string) => void): Promise<ChatModel> {
    const modelDir = String(config.model_name_or_path);
    if (!fs.existsSync(modelDir)) {
      throw new TunekitError(`model_name_or_path: ${modelDir} does not exist. tunekit loads local Hugging Face folders (config.json, *.safetensors, tokenizer.json); create one with \`tunekit init-model\`.`);
    }
    const backendId = String(config.backend ?? 'cpu');
    const backend = resolveContribution(run, INFERENCE_BACKEND, backendId);
    const probe = backend.probe();
    if (!probe.usable) throw new TunekitError(`backend '${backendId}' cannot run here: ${probe.reason ?? 'unknown reason'}`);
    const adapters = Array.isArray(config.adapter_name_or_path) ? config.adapter_name_or_path.map(String) : [];
    const engine = await GenerationEngine.load({
      modelDir,
      adapters,
      backendOptions: backend.sessionOptions(),
      seed: typeof config.seed === 'number' ? config.seed : undefined,
      // quantization_bit (@tunekit/plugin-quantization): the base is quantized as in QLoRA training.
      quantization: quantizationSettings(config.quantization_bit, config.quantization_type),
      log,
    });
    const tokenizer = engine.tokenizer;
    if (!tokenizer) {
      await engine.release();
      throw new TunekitError(`model_name_or_path: ${modelDir} has no tokenizer.json, which chatting needs.`);
    }
    const templateId = typeof config.template === 'string' ? config.template : tokenizer.chatTemplate ? 'jinja' : 'empty';
    const template = resolveContribution(run, TEMPLATE, templateId);
    return new ChatModel(engine, template, templateId, generationSettingsFrom(config), config.enable_thinking !== false);
  }

  /** The assistant's answer to `messages` (which end with a user or observation message); `onText` streams it. */
  chat(messages: readonly ChatMessage[], options: ChatTurnOptions = {}, onText?: (text: string) => void): Promise<ChatCompletion> {
    return this.engine.chatCompletion(
      messages,
      { ...this.settings, ...options.settings, template: this.template, system: options.system, tools: options.tools, enableThinking: this.enableThinking },
      onText,
    );
  }

  /** Whether the template writes `tools` into the prompt of `messages` (a template without a tool format ignores them). */
  acceptsTools(messages: readonly ChatMessage[], tools: string, system?: string): boolean {
    const encode = (withTools?: string) =>
      this.template.encodeOneturn(this.engine.tokenizer!, [...messages, { role: 'assistant', content: '' }], {
        system: system ?? this.settings.defaultSystem,
        tools: withTools,
        enableThinking: this.enableThinking,
      }).promptIds;
    return encode(tools).join() !== encode().join();
  }

  release(): Promise<void> {
    return this.engine.release();
  }
}
