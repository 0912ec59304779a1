/** The KL coefficient of PPO's per-token penalty, updated after each rollout batch. */
export interface KlController {
  readonly value: number;
  /** `current`: the batch's mean sequence KL (sum over tokens of logp - ref_logp); `steps`: the batch's sequences. */
  update(current: number, steps: number): void;
  state(): KlControllerState;
}

export interface KlControllerState {
  readonly kind: 'adaptive' | 'fixed';
  readonly value: number;
}

/**
 * TRL's AdaptiveKLController (Ziegler et al.): the coefficient moves toward holding the KL at `target`; the
 * proportional error current / target - 1 is clipped to ±0.2 and the coefficient multiplied by
 * 1 + error * steps / horizon.
 */
export class AdaptiveKlController implements KlController {
  constructor(
    public value: number,
    readonly target: number,
    readonly horizon: number,
  ) {}

  update(current: number, steps: number): void {
    const error = Math.min(0.2, Math.max(-0.2, current / this.target - 1));
    this.value *= 1 + (error * steps) / this.horizon;
  }

  state(): KlControllerState {
    return { kind: 'adaptive', value: this.value };
  }
}

/** TRL's FixedKLController: the coefficient never changes. */
export class FixedKlController implements KlController {
  constructor(readonly value: number) {}

  update(): void {}

  state(): KlControllerState {
    return { kind: 'fixed', value: this.value };
  }
}
