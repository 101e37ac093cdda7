/**
 * Per-offset loss weights: uniform, an explicit array, or a geometric decay `r^j` (Medusa
 * weights head j by 0.8^j). Resolved once, validated with messages that name the value.
 *
 * Reference: Cai et al., "Medusa" (2024), §2.1.1 (λ_k = 0.8^k).
 */
import { fail } from '../internal/errors.js';

/** Per-offset weights: an array of length k (each ≥ 0, not all 0), or `{ decay: r }` for `r^j`, r > 0. @inline */
export type OffsetWeights =
  | readonly number[]
  | {
      /** Ratio r > 0 of the geometric weights: offset j gets `r^j` (offset 0 gets 1). */
      decay: number;
    };

/** Validates the parts of `weights` that do not depend on k (call early, e.g. when a loss is created). */
export function checkOffsetWeights(where: string, weights: OffsetWeights | undefined): void {
  if (weights === undefined) return;
  if (Array.isArray(weights)) {
    weights.forEach((w, j) => {
      if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) {
        fail(RangeError, where, `offsetWeights[${j}]`, 'must be a finite number ≥ 0', w);
      }
    });
    if (!weights.some((w) => w > 0)) {
      throw new RangeError(`${where}: offsetWeights must have a positive entry, but got [${weights.join(', ')}].`);
    }
    return;
  }
  const decay = (weights as { decay?: unknown } | null)?.decay;
  if (typeof decay !== 'number' || !Number.isFinite(decay) || decay <= 0) {
    fail(RangeError, where, 'offsetWeights.decay', 'must be a finite number > 0', decay ?? weights);
  }
}

/** The k weights, offsets 0…k-1 (uniform 1 by default). */
export function resolveOffsetWeights(where: string, weights: OffsetWeights | undefined, k: number): number[] {
  checkOffsetWeights(where, weights);
  if (weights === undefined) return Array.from({ length: k }, () => 1);
  if (Array.isArray(weights)) {
    if (weights.length !== k) {
      throw new RangeError(`${where}: offsetWeights must have length k = ${k}, but got length ${weights.length}.`);
    }
    return [...weights];
  }
  const { decay } = weights as { decay: number };
  return Array.from({ length: k }, (_, j) => decay ** j);
}
