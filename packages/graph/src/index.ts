export { bytesPerElement, isFloat, toTypedArray, float16Bits, bfloat16Bits } from './dtype';
export type { DType, TypedArray } from './dtype';
export { GraphError, GradientError, FeedError } from './errors';
export { broadcastShapes, formatShape, isStatic, numelOf } from './shape';
export type { Dim, Shape } from './shape';
export { OP_TYPES } from './ops';
export type { OpType, PrimitiveOp } from './ops';
export { Graph, Tensor, SLICE_TO_END, constInts } from './graph';
export type { Node, Operand, Attrs, AttrValue, ExternalData, InitializerData, TensorKind } from './graph';
export { grad, BACKWARD_RULES, unbroadcast } from './autodiff';
export type { GradOptions, Rule, RuleContext, BackwardFn, NoGradient } from './autodiff';
export {
  sigmoid,
  silu,
  softmax,
  logSoftmax,
  softplus,
  logSigmoid,
  rmsNorm,
  layerNorm,
  geluTanh,
  geluErf,
  sumSquares,
  causalMask,
  paddingMask,
  maskedFill,
  crossEntropy,
  gatherLogProbs,
  linear,
} from './nn';
export type { CrossEntropyOptions } from './nn';
export { adamwUpdate, adamUpdate, sgdUpdate, clipGradNorm, clipCoefficient, applyOptimizer, adamOptimizer, sgdOptimizer, adafactorOptimizer, stateShapeOf } from './optim';
export type {
  Scalar,
  AdamHyper,
  AdamState,
  SgdHyper,
  SgdState,
  OptimizerSpec,
  GraphOptimizer,
  AdafactorOptions,
  ParamGroup,
  OptimizerPlanOptions,
  OptimizerPlan,
  LoopVariable,
} from './optim';
export { toModelProto, encodeModel, saveModel, liveNodes } from './onnx-model';
export type { EncodeOptions } from './onnx-model';
export { Session, checkFeeds, compileToFile, ortSessionOptions } from './session';
export type { SessionOptions, HostTensor, Feed, IoSpec } from './session';
export { WorkerSession } from './worker-session';
export { readSafetensors, safetensorsInitializers, writeSafetensors } from './safetensors';
export type { SafetensorsEntry, SafetensorsIndex } from './safetensors';
