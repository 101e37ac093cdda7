/**
 * A domain shift for draft heads trained on stories: short repeated templates ("The cat. The
 * dog. The cat. The dog."), on which stories260K's continuations turn into repetitive lists that
 * story-trained heads draft poorly. Adaptation runs on templates of some noun pairs and is
 * measured on templates of pairs it never saw (the same nouns, other combinations and orders): a
 * gain is the heads learning the kind of text the app produces, not memorising its prompts.
 */

/** The nouns of the templates. */
export const NOUNS = ['cat', 'dog', 'ball', 'tree', 'bird', 'car', 'sun', 'cake', 'fish', 'hat', 'box', 'bed', 'cup', 'toy', 'boat', 'star'] as const;

/** The template of nouns `a` and `b`. */
export function template(a: string, b: string): string {
  return `The ${a}. The ${b}. The ${a}. The ${b}.`;
}

/** Every ordered pair of distinct nouns, in a fixed shuffled order (a seeded permutation). */
function pairs(): Array<[string, string]> {
  const all: Array<[string, string]> = [];
  NOUNS.forEach((a) => NOUNS.forEach((b) => a !== b && all.push([a, b])));
  let state = 12345;
  for (let i = all.length - 1; i > 0; i--) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    const j = state % (i + 1);
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  return all;
}

/** The first `count` templates to adapt on (at most 200). */
export function adaptationPrompts(count: number): string[] {
  return pairs().slice(0, Math.min(count, 200)).map(([a, b]) => template(a, b));
}

/** `count` held-out templates (at most 40): pairs no adaptation prompt uses. */
export function heldOutTemplatePrompts(count: number): string[] {
  return pairs().slice(200, 200 + Math.min(count, 40)).map(([a, b]) => template(a, b));
}
