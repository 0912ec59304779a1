export { collateFeedback, collatePairs, feedbackLength, lastTokenMask, pairLength } from './batches';
export { ktoObjective, lossInputs, pairedPreferenceObjective, preferenceWindowMetrics, rewardModelObjective, type SelectedLoss } from './objectives';
export { DPO_LAYOUT, frozenReferenceModel, KTO_LAYOUT, PreferenceRecipe, RewardModelRecipe, type PreferenceLayout } from './recipes';
export { adapterFreeReference, FrozenReference, REFERENCE_LOGPS_INPUT, type ReferenceModel } from './reference';
export { gatherMarked, VALUE_HEAD_BIAS, VALUE_HEAD_FILE, VALUE_HEAD_WEIGHT, ValueHead } from './value-head';
