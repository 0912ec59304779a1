export { GenerationEngine } from './engine';
export type { ChatCompletion, ChatOptions, EngineOptions, FinishReason, GenerationResult, ModelEngineOptions, TokenEvent } from './engine';
export { DEFAULT_GENERATION_SETTINGS, generationSettingsFrom, newTokenBudget, resolveSettings } from './settings';
export type { GenerationSettings } from './settings';
export { Decoder, KvCache, buildDecoderGraph, promptPass, stepPass } from './decoder';
export type { DecoderOptions, DecoderPass, GraphLayout, KvOutputs, PassOutput } from './decoder';
export { loadAdapters, MAX_MERGED_BYTES, readsBaseWeight, withAdapters } from './adapters';
export type { AdapterMode, AdapterOptions } from './adapters';
export { BeamHypotheses } from './beam-search';
export type { Hypothesis } from './beam-search';
export { TextStream } from './text-stream';
export {
  applyRepetitionPenalty,
  applyTemperature,
  applyTopK,
  applyTopP,
  argmax,
  chooseToken,
  kthLargest,
  logSoftmax,
  sampleIndex,
  softmax,
  topIndices,
  type TokenChoice,
} from './logits';
