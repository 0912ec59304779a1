import { composeSchema, LOSS, PluginScope, resolveContribution, type ConfigIssue, type ResolvedConfig } from '@tunekit/kernel';
import * as plugin from '../src';
import { checkPreferenceOptions, preferenceLossId, PREFERENCE_DEFAULTS, usesReferenceModel, type PreferenceLoss } from '../src';

function issuesOf(config: Record<string, unknown>): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  checkPreferenceOptions(config, (issue) => issues.push(issue));
  return issues;
}

const keysOf = (config: Record<string, unknown>) => issuesOf(config).map((issue) => issue.key);

describe('the preference keys in the kernel schema', () => {
  const scope = new PluginScope();
  scope.load(plugin);
  const schema = composeSchema(scope);
  const validate = (raw: Record<string, unknown>) => schema.validate({ model_name_or_path: 'm', ...raw }, scope.registry, { points: [LOSS] });

  it('owns the keys the kernel catalog lists for it, with LLaMA-Factory defaults', () => {
    for (const key of Object.keys(PREFERENCE_DEFAULTS)) expect(schema.ownerOf(key)).toBe('@tunekit/plugin-preference');
    const result = validate({ stage: 'dpo' });
    expect(result.issues).toEqual([]);
    if (!result.ok) return;
    expect(result.config).toMatchObject({
      pref_beta: 0.1,
      pref_ftx: 0,
      pref_bco_weight: 0,
      pref_loss: 'sigmoid',
      dpo_label_smoothing: 0,
      kto_chosen_weight: 1,
      kto_rejected_weight: 1,
      simpo_gamma: 0.5,
    });
    expect(result.config.ld_alpha).toBeUndefined();
    expect(result.config.ref_model).toBeUndefined();
  });

  it('reads numbers written as strings and null as the default', () => {
    const result = validate({ stage: 'dpo', pref_beta: '0.25', simpo_gamma: null, ld_alpha: '0.5' });
    expect(result.ok && result.config).toMatchObject({ pref_beta: 0.25, simpo_gamma: 0.5, ld_alpha: 0.5 });
  });

  it('refuses values out of range, naming the key', () => {
    const keys = (raw: Record<string, unknown>) => validate(raw).issues.map((issue) => issue.key);
    expect(keys({ pref_beta: 0 })).toContain('pref_beta');
    expect(keys({ dpo_label_smoothing: 0.6 })).toContain('dpo_label_smoothing');
    expect(keys({ stage: 'dpo', ld_alpha: 1.5 })).toContain('ld_alpha');
    const [bits] = validate({ stage: 'dpo', ref_model: 'r', ref_model_quantization_bit: 3 }).issues;
    expect(bits.key).toBe('ref_model_quantization_bit');
    expect(bits.message).toContain('only 4-bit or 8-bit quantization is accepted');
  });

  it('checks pref_loss against the installed losses', () => {
    const [issue] = validate({ stage: 'dpo', pref_loss: 'sigmod' }).issues;
    expect(issue.key).toBe('pref_loss');
    expect(issue.message).toContain("no loss 'sigmod' is installed");
  });

  it('contributes every loss, built from the run config', () => {
    expect(scope.registry.ids(LOSS)).toEqual(['hinge', 'ipo', 'kto', 'kto_pair', 'orpo', 'pairwise', 'sigmoid', 'simpo']);
    const result = validate({ stage: 'dpo', pref_loss: 'orpo', pref_ftx: 0.5 });
    expect(result.issues).toEqual([]);
    const run = scope.createRun(result.ok ? result.config : {});
    const orpo = resolveContribution(run, LOSS, preferenceLossId(result.ok ? result.config : {})!) as PreferenceLoss;
    expect(orpo.requirements).toEqual({
      needsReference: false,
      sequenceLogps: 'sum',
      inputs: ['policy_chosen_logps', 'policy_rejected_logps', 'chosen_lengths', 'rejected_lengths'],
      optionalInputs: ['policy_chosen_logits_mean', 'policy_rejected_logits_mean'],
    });
  });
});

describe('what each loss declares', () => {
  const requirementsOf = (id: plugin.PreferenceLossId, config: ResolvedConfig = {}) => plugin.createPreferenceLoss(id, config).requirements;

  it('reference-free losses are orpo, simpo and pairwise', () => {
    const free = (Object.keys(plugin.PREFERENCE_LOSSES) as plugin.PreferenceLossId[]).filter((id) => !requirementsOf(id).needsReference);
    expect(free.sort()).toEqual(['orpo', 'pairwise', 'simpo']);
    expect(plugin.REFERENCE_FREE_LOSSES).toEqual(['orpo', 'simpo']);
  });

  it('pref_ftx adds chosen_lengths to a summed loss; ld_alpha swaps the policy sums for per-token log-probs', () => {
    expect(requirementsOf('hinge').inputs).not.toContain('chosen_lengths');
    expect(requirementsOf('hinge', { pref_ftx: 0.1 }).inputs).toContain('chosen_lengths');
    expect(requirementsOf('ipo', { ld_alpha: 0.3 }).inputs).toEqual(['policy_token_logps', 'token_mask', 'reference_chosen_logps', 'reference_rejected_logps']);
  });

  it('kto reads tagged rows and KL rows; pairwise reads scores', () => {
    expect(requirementsOf('kto')).toEqual({
      needsReference: true,
      sequenceLogps: 'sum',
      inputs: ['policy_logps', 'reference_logps', 'kto_tags', 'policy_kl_logps', 'reference_kl_logps'],
    });
    expect(requirementsOf('kto', { pref_ftx: 1 }).inputs).toContain('lengths');
    expect(requirementsOf('pairwise')).toEqual({ needsReference: false, sequenceLogps: 'none', inputs: ['chosen_scores', 'rejected_scores'] });
  });
});

describe('the cross-key checks', () => {
  it('accepts the defaults in every stage and the usual DPO / KTO / ORPO configs', () => {
    for (const stage of ['pt', 'sft', 'rm', 'dpo', 'kto', 'ppo']) expect(issuesOf({ stage })).toEqual([]);
    expect(issuesOf({ stage: 'dpo', pref_loss: 'sigmoid', dpo_label_smoothing: 0.1, pref_ftx: 0.5, ref_model: 'base' })).toEqual([]);
    expect(issuesOf({ stage: 'kto', kto_chosen_weight: 1.5, kto_rejected_weight: 0.5, pref_ftx: 0.2 })).toEqual([]);
    expect(issuesOf({ stage: 'dpo', pref_loss: 'simpo', simpo_gamma: 0.8, ld_alpha: 0.5 })).toEqual([]);
  });

  it('dpo_label_smoothing only with the sigmoid loss (LLaMA-Factory)', () => {
    const [issue] = issuesOf({ stage: 'dpo', pref_loss: 'hinge', dpo_label_smoothing: 0.1 });
    expect(issue).toEqual({
      key: 'dpo_label_smoothing',
      message: "dpo_label_smoothing is 0.1 but pref_loss is 'hinge'; it only applies to the sigmoid loss of stage dpo. Remove dpo_label_smoothing or set pref_loss: sigmoid.",
    });
  });

  it('ref_model and its adapters only where a reference model is used', () => {
    for (const pref_loss of ['orpo', 'simpo']) {
      const [issue] = issuesOf({ stage: 'dpo', pref_loss, ref_model: 'base' });
      expect(issue.key).toBe('ref_model');
      expect(issue.message).toContain(`pref_loss '${pref_loss}' is reference-free`);
    }
    expect(issuesOf({ stage: 'sft', ref_model: 'base' })[0].message).toContain('stage "sft" uses no reference model (only dpo, kto, ppo, grpo do)');
    expect(issuesOf({ stage: 'grpo', ref_model: 'base' })).toEqual([]);
    expect(issuesOf({ stage: 'grpo', beta: 0, ref_model: 'base' })[0].message).toBe('ref_model is set but beta is 0, so stage grpo has no KL term and loads no reference model. Remove ref_model.');
    expect(issuesOf({ stage: 'kto', ref_model: 'base', ref_model_adapters: 'lora' })).toEqual([]);
    expect(issuesOf({ stage: 'dpo', ref_model_adapters: 'lora' })[0].message).toContain('ref_model_adapters is set but ref_model is not');
    expect(keysOf({ stage: 'dpo', ref_model: 'base', ref_model_quantization_bit: 4 })).toEqual(['ref_model_quantization_bit']);
  });

  it('kto weights only for stage kto, simpo_gamma only for simpo, pref_loss only for dpo', () => {
    expect(keysOf({ stage: 'dpo', kto_chosen_weight: 2 })).toEqual(['kto_chosen_weight']);
    expect(keysOf({ stage: 'dpo', kto_rejected_weight: 2 })).toEqual(['kto_rejected_weight']);
    expect(keysOf({ stage: 'dpo', pref_loss: 'orpo', simpo_gamma: 1 })).toEqual(['simpo_gamma']);
    expect(keysOf({ stage: 'kto', pref_loss: 'orpo' })).toEqual(['pref_loss']);
    expect(keysOf({ stage: 'rm', pref_ftx: 0.1 })).toEqual(['pref_ftx']);
    expect(keysOf({ stage: 'sft', ld_alpha: 0.5 })).toEqual(['ld_alpha']);
  });

  it('the stage losses are not pref_loss values', () => {
    const [issue] = issuesOf({ stage: 'dpo', pref_loss: 'kto' });
    expect(issue.message).toContain("pref_loss 'kto' is the loss of stage kto, which selects it by itself");
    expect(keysOf({ stage: 'dpo', pref_loss: 'pairwise' })).toEqual(['pref_loss']);
  });

  it('refuses what tunekit cannot do yet (BCO) and what LLaMA-Factory refuses (PiSSA with a base-model reference)', () => {
    expect(issuesOf({ stage: 'dpo', pref_bco_weight: 0.5 })[0].message).toContain('does not implement the BCO term');
    expect(keysOf({ stage: 'dpo', pissa_init: true })).toEqual(['pissa_init']);
    expect(keysOf({ stage: 'kto', pissa_init: true })).toEqual(['pissa_init']);
    expect(issuesOf({ stage: 'dpo', pref_loss: 'orpo', pissa_init: true })).toEqual([]);
  });
});

describe('stage helpers', () => {
  it('maps the stage to its loss id and reference use', () => {
    expect(preferenceLossId({ stage: 'dpo', pref_loss: 'ipo' })).toBe('ipo');
    expect(preferenceLossId({ stage: 'dpo' })).toBe('sigmoid');
    expect(preferenceLossId({ stage: 'kto', pref_loss: 'ipo' })).toBe('kto');
    expect(preferenceLossId({ stage: 'rm' })).toBe('pairwise');
    expect(preferenceLossId({ stage: 'sft' })).toBeUndefined();
    expect(usesReferenceModel({ stage: 'dpo', pref_loss: 'simpo' })).toBe(false);
    expect(usesReferenceModel({ stage: 'dpo', pref_loss: 'kto_pair' })).toBe(true);
    expect(usesReferenceModel({ stage: 'kto' })).toBe(true);
    expect(usesReferenceModel({ stage: 'rm' })).toBe(false);
  });
});
