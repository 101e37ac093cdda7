/**
 * Unknown option keys, refused by name: a misspelled option (`maxTokens` for `maxNewTokens`,
 * `temprature`) would otherwise be ignored silently and its default used. The error names the
 * key and the nearest known one (Levenshtein distance), as the loaders already did.
 */
import { show } from './errors.js';

/** Edit distance between `a` and `b` (insertions, deletions, substitutions; case-insensitive). */
function distance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let row = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const next = [i];
    for (let j = 1; j <= y.length; j++) next.push(Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1)));
    row = next;
  }
  return row[y.length]!;
}

/** The known key nearest to `key`, if it is near enough to be a likely misspelling (at most a third of its letters off). */
export function nearestKey(key: string, known: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = distance(key, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  return best !== null && bestDistance <= Math.max(2, Math.ceil(key.length / 3)) ? best : null;
}

/**
 * Throws a `TypeError` naming `fn`, `arg` and the first own key of `options` that is not in
 * `known`, with the nearest known key when one is close. Symbols count as unknown keys too.
 */
export function checkKeys(fn: string, arg: string, options: object, known: readonly string[]): void {
  for (const key of Reflect.ownKeys(options)) {
    if (typeof key === 'string' && known.includes(key)) continue;
    const name = typeof key === 'string' ? key : String(key);
    const near = typeof key === 'string' ? nearestKey(key, known) : null;
    throw new TypeError(`${fn}: ${arg} has no option ${show(name)}${near !== null ? ` (did you mean ${show(near)}?)` : ''}; its options are ${known.join(', ')}.`);
  }
}
