/**
 * Weight tying helpers: find an `Embedding` layer by name upstream of a symbolic input, and read
 * its `[vocab, hidden]` matrix by reference (one weight, two uses; Press & Wolf, "Using the
 * Output Embedding to Improve Language Models", 2017).
 *
 * Layer names survive a save/load round trip, but a name stored as a string config value is
 * snake/camel-converted by tfjs-layers (`'tok_emb'` comes back as `'tokEmb'`), so names are
 * compared exactly first and then with underscores and case ignored.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { SymbolicTensor } from '@tensorflow/tfjs-layers';
import { checkSameTfjs } from '../internal/instance.js';
import type { Layer } from './args.js';

/** A name with underscores and case removed: `'tok_emb'` and `'tokEmb'` both become `'tokemb'`. */
function looseName(name: string): string {
  return name.replace(/_/g, '').toLowerCase();
}

/** The layers upstream of `inputs` (including their source layers), nearest first. */
function upstreamLayers(inputs: SymbolicTensor[]): Layer[] {
  const seen = new Set<Layer>();
  const queue: Layer[] = inputs.map((t) => t.sourceLayer);
  while (queue.length > 0) {
    const layer = queue.shift()!;
    if (seen.has(layer)) continue;
    seen.add(layer);
    for (const node of layer.inboundNodes) queue.push(...node.inboundLayers);
  }
  return [...seen];
}

/**
 * True when every input is a `SymbolicTensor` (the functional-API path of `Layer.apply`). Throws,
 * naming `where`, when an input is a tensor from another copy of tfjs.
 */
export function isSymbolic(inputs: unknown, where = 'Layer.apply'): inputs is SymbolicTensor | SymbolicTensor[] {
  const list = Array.isArray(inputs) ? inputs : [inputs];
  list.forEach((t, i) => checkSameTfjs(where, Array.isArray(inputs) ? `inputs[${i}]` : 'inputs', t));
  return list.length > 0 && list.every((t) => t instanceof SymbolicTensor);
}

/** Finds the layer called `name` upstream of `inputs`: an exact match, else a snake/camel-insensitive one. */
export function findUpstreamLayer(inputs: SymbolicTensor | SymbolicTensor[], name: string): Layer | null {
  const candidates = upstreamLayers(Array.isArray(inputs) ? inputs : [inputs]);
  return candidates.find((l) => l.name === name) ?? candidates.find((l) => looseName(l.name) === looseName(name)) ?? null;
}

/** The `[vocab, hidden]` matrix of a tied layer: its first weight, which must be rank 2. */
export function tiedMatrix(where: string, layer: Layer): tf.Tensor2D {
  if (!layer.built) {
    throw new Error(`${where}: tiedTo layer '${layer.name}' must be built (applied once) before it is used, but it is not built.`);
  }
  const weight = layer.weights[0];
  if (weight === undefined || weight.shape.length !== 2) {
    throw new TypeError(
      `${where}: tiedTo layer '${layer.name}' must own a [vocabSize, hidden] matrix as its first weight (an Embedding), but got ${weight === undefined ? 'no weights' : `shape [${weight.shape.join(', ')}]`}.`,
    );
  }
  return weight.read() as tf.Tensor2D;
}
