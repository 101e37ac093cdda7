/**
 * How a parent layer nests its sub-layers' weights: a name prefix per sub-layer (so a
 * `MultiTokenHead` saves `offset1/kernel`, `unembedding/kernel`, … under its own name). Kept in
 * a module-private map rather than a public field, so it is not part of any layer's API.
 */
import type { Layer } from './args.js';

const prefixes = new WeakMap<Layer, string>();

/** Makes `layer`'s weight names start with `prefix` (e.g. `'offset1/'`); call before it is built. */
export function setWeightNamePrefix(layer: Layer, prefix: string): void {
  prefixes.set(layer, prefix);
}

/** The name of `layer`'s weight `name`, with the prefix its parent set (if any). */
export function weightName(layer: Layer, name: string): string {
  return `${prefixes.get(layer) ?? ''}${name}`;
}
