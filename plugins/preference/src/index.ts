export {
  createPreferenceLoss,
  ktoContribution,
  pairwiseContribution,
  PAIR_FORMULAS,
  PREFERENCE_LOSSES,
  preferenceSettings,
  REFERENCE_FREE_LOSSES,
} from './contributions';
export type { LossContribution, PairLossId, PreferenceLoss, PreferenceLossId, PreferenceSettings } from './contributions';
export { PREFERENCE_DEFAULTS } from './defaults';
export {
  hingeLoss,
  ipoLoss,
  ktoLoss,
  ktoPairLoss,
  ldSequenceLogps,
  orpoLoss,
  pairwiseLoss,
  preferenceMargin,
  referenceRewards,
  sftLoss,
  sigmoidLoss,
  simpoLoss,
  splitPairs,
} from './losses';
export type { KtoInputs, KtoLosses, OrpoLosses, PairLogps, PairLosses, PolicyAverages } from './losses';
export { checkPreferenceOptions, preferenceLossId, usesReferenceModel } from './options';
export { name, options, register } from './plugin';
export {
  adapterFreeReference,
  collateFeedback,
  collatePairs,
  DPO_LAYOUT,
  feedbackLength,
  FrozenReference,
  frozenReferenceModel,
  gatherMarked,
  KTO_LAYOUT,
  ktoObjective,
  lastTokenMask,
  lossInputs,
  pairedPreferenceObjective,
  pairLength,
  PreferenceRecipe,
  preferenceWindowMetrics,
  REFERENCE_LOGPS_INPUT,
  rewardModelObjective,
  RewardModelRecipe,
  VALUE_HEAD_BIAS,
  VALUE_HEAD_FILE,
  VALUE_HEAD_WEIGHT,
  ValueHead,
} from './stages';
export type { PreferenceLayout, ReferenceModel, SelectedLoss } from './stages';
