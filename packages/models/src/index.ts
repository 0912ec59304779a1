export { MODEL_TYPES, parseModelConfig, readModelConfig, parameterSpecs, linearSpecs, isNoDecayParameter } from './config';
export type { ModelType, ModelConfig, RopeScaling, ParameterKind, ParameterSpec, LinearSpec } from './config';
export { SafetensorsWeights, MemoryWeights, OverlayWeights, readSafetensorsHeader, weightFiles, toFloat32 } from './weights';
export type { WeightSource, WeightEntry, LoadWeightsOptions } from './weights';
export { ropeInvFreq, ropeCosSin, applyRope } from './rope';
export { CausalLM, causalLMInputs, attentionKeepMask, cachedCausalLMInputs, cachedAttentionKeepMask } from './causal-lm';
export type {
  CausalLMInputs,
  LinearModule,
  AdapterParameter,
  LinearCall,
  LinearWrapper,
  DecoderLayerCall,
  DecoderLayerHook,
  TrainableParameter,
  ForwardOptions,
  ForwardResult,
  KeyValue,
  CachedCausalLMInputs,
  CachedForwardOptions,
  CachedForwardResult,
} from './causal-lm';
export { IGNORE_INDEX, shiftLabels, tokenLogps, causalLmLoss, sequenceLogps, dpoSigmoidLoss } from './losses';
export type { TokenLogps, CausalLmLoss, SequenceLogps, DpoInputs, DpoOutputs } from './losses';
export { LoraAdapter, loraScaling, loraForward, doraForward, doraRowNorms, matchesTargetModules, peftNames, isPissaInit, targetSpecs } from './adapters/lora';
export type { LoraConfig, LoraModuleWeights } from './adapters/lora';
export { initPissa, pissaFactors, pissaToLora, pissaInitName, pissaNiter } from './adapters/pissa';
export type { PissaFactors, PissaOptions } from './adapters/pissa';
export { svdJacobi, svdLowRank, svdFromRange, orthonormalizeColumns } from './adapters/svd';
export type { Svd } from './adapters/svd';
export { hashDropout, dropoutSeed, dropoutKeepMask, dropThreshold, moduleSalt, HASH_PRIME } from './adapters/dropout';
export { runNumerics, compareNumerics, summarizeComparisons, TOLERANCES } from './numerics';
export type { NumericsOptions, Comparison, ValueKind } from './numerics';
export { createRng } from './rng';
export type { Rng } from './rng';
export { randomWeights, createRandomModel, newModelConfig, writeModelFolder, initModel } from './init';
export type { WeightMap, InitModelOptions, InitModelResult } from './init';
export { buildTokenizer, learnMerges, bytesToUnicode, archTokens, checkTokenizerRoundTrip, SAMPLE_TEXT, SPLIT_PATTERN } from './tokenizer-builder';
export type { BuiltTokenizer, ArchTokens } from './tokenizer-builder';
export { resizeVocabulary, VOCAB_MULTIPLE } from './resize';
export { MergedWeights } from './adapters/merged-weights';
export { quantize, quantizationSettings, quantizeBlockwise, dequantizeBlockwise, quantizableWeights, QuantizedWeights, NF4_CODE, FP4_CODE, INT4_CODE } from './quantize';
export type { QuantizeOptions, QuantizationType } from './quantize';
