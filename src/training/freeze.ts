/**
 * Training draft heads on a frozen model (Medusa-1): one call leaves only offsets 1…k−1
 * trainable — the `LightweightOffsetHead`s 1…k−1 of a `MultiTokenHead`, or the modules of a
 * `SequentialMtpHead` — and freezes everything else: the trunk, the embedding, offset 0's
 * transform and the shared unembedding (which offset 0 uses too, as does a tied embedding).
 * Offset 0's logits, the model's own next-token predictions, then stay bit-identical.
 *
 * tfjs-layers reads `trainable` when a model is compiled (`compile` snapshots
 * `trainableWeights` into the list `fit` differentiates); this call and its `restore` refresh
 * that list on a compiled model, so both take effect on the next `fit` without compiling again.
 *
 * Reference: Cai et al., "Medusa" (2024), §2.2.1 (Medusa-1: heads trained on a frozen backbone).
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { LayersModel, LayerVariable } from '@tensorflow/tfjs-layers';
import { fail } from '../internal/errors.js';
import type { Layer } from '../layers/args.js';
import { type DraftHeadLayer, isDraftHeadLayer } from '../layers/draft_head.js';

const WHERE = 'freezeAllButDraftHeads';

/** What {@link freezeAllButDraftHeads} did, and the way back. @inline */
export interface DraftHeadFreeze {
  /** The weights left trainable: offsets 1…k−1's transforms, or the sequential modules. */
  readonly trainable: readonly LayerVariable[];
  /** The weights this call made non-trainable (every other weight that was trainable). */
  readonly frozen: readonly LayerVariable[];
  /** The `tf.Variable`s of `trainable`, the `varList` of a custom loop's `optimizer.minimize`. */
  readonly variables: tf.Variable[];
  /**
   * Puts every layer's and weight's `trainable` back as it was before the call (and refreshes a
   * compiled model's training list, as the call did).
   */
  restore(): void;
}

type Head = DraftHeadLayer & Layer;

function isHead(layer: Layer): layer is Head {
  return isDraftHeadLayer(layer); // duck-typed: a second copy of this package (ESM and CJS in one app) has its own classes
}

/** The layers nested in `layer` (a model used as a layer has `layers`). */
function children(layer: Layer): Layer[] {
  const nested = (layer as { layers?: unknown }).layers;
  return Array.isArray(nested) ? (nested as Layer[]) : [];
}

/** Every layer under `root` (not `root` itself), parents before their children. */
function descendants(root: Layer): Layer[] {
  return children(root).flatMap((l) => [l, ...descendants(l)]);
}

/** The sub-layers a head owns outside `layers`: its offset heads (parallel heads) and its unembedding. */
function headParts(head: Head): Layer[] {
  const offsets = (head as { offsetHeads?: Layer[] }).offsetHeads;
  return [...(Array.isArray(offsets) ? offsets : []), head.unembedding];
}

/** The weights that stay trainable: offsets 1…k−1 (a `MultiTokenHead`), or the modules (a `SequentialMtpHead`, whose own weights are exactly those). */
function draftWeights(head: Head): LayerVariable[] {
  return head.draftWeights().map((w) => w.variable);
}

/** The weights of `layer` itself (a container's come from its layers, which are visited on their own). */
function ownWeights(layer: Layer): LayerVariable[] {
  return children(layer).length > 0 ? [] : layer.weights;
}

/** Points a compiled model's training list (tfjs-layers' snapshot of `trainableWeights`, made by `compile`) at the current flags. */
function refreshCompiled(model: LayersModel): void {
  const compiled = model as unknown as { collectedTrainableWeights?: LayerVariable[] };
  if (Array.isArray(compiled.collectedTrainableWeights)) compiled.collectedTrainableWeights = model.trainableWeights;
}

/**
 * Makes only the draft offsets 1…k−1 of the model's `MultiTokenHead`s or `SequentialMtpHead`s
 * trainable and freezes every other weight: the trunk, the embedding, offset 0's transform and
 * the shared unembedding (tied or not). Training afterwards — `model.fit`, or a custom loop with
 * `optimizer.minimize(f, true, result.variables)` — leaves offset 0's logits bit-identical.
 *
 * Call it before `model.compile`, or after: a compiled model's list of trained weights is
 * refreshed, as compiling again would. `restore()` undoes it (for joint training afterwards).
 *
 * @param model A built `tf.LayersModel` containing at least one `MultiTokenHead` or
 *   `SequentialMtpHead` (possibly inside a nested model), whose offsets 1…k−1 own weights.
 * @returns The weights left trainable, those frozen, their variables and `restore`.
 *
 * @example
 * const freeze = freezeAllButDraftHeads(model);
 * model.compile({ optimizer: tf.train.adam(0.01), loss: multiTokenLossFunction() });
 * await model.fit(x, y, { epochs: 4 }); // offset 0 unchanged, offsets 1…k−1 trained
 * freeze.restore();
 */
export function freezeAllButDraftHeads(model: LayersModel): DraftHeadFreeze {
  if (model === null || typeof model !== 'object' || !Array.isArray((model as { layers?: unknown }).layers)) {
    fail(TypeError, WHERE, 'model', 'must be a tf.LayersModel', model);
  }
  const root = model as unknown as Layer;
  const layers = descendants(root);
  const heads = layers.filter(isHead);
  if (heads.length === 0) {
    throw new Error(`${WHERE}: model must contain a MultiTokenHead or SequentialMtpHead layer, but its layers are [${layers.map((l) => `${l.name} (${l.getClassName()})`).join(', ')}].`);
  }
  // Every check before any flag changes.
  for (const head of heads) {
    if (draftWeights(head).length === 0) {
      const kinds = Array.isArray((head as { headKinds?: unknown }).headKinds) ? ` (offsets 1…k−1: ${(head as unknown as { headKinds: string[] }).headKinds.slice(1).join(', ') || 'none'})` : '';
      throw new RangeError(`${WHERE}: every head must have weights in offsets 1…k−1 to train, but '${head.name}' (numHeads ${head.numHeads}${kinds}, built ${head.built}) has none.`);
    }
  }
  const tied = heads.map((h) => h.unembedding.tiedLayerObject).filter((l): l is Layer => l !== null && !layers.includes(l));
  const everyLayer = [root, ...layers, ...heads.flatMap(headParts), ...tied]; // parents first: a container's or a head's setter cascades
  const weights = [...new Set([...everyLayer.flatMap(ownWeights), ...heads.flatMap(draftWeights)])];
  const before = { layers: everyLayer.map((l) => l.trainable), weights: weights.map((w) => w.trainable) };
  const onPath = (l: Layer): boolean => heads.includes(l as Head) || descendants(l).some((d) => heads.includes(d as Head));

  // Containers that hold a head stay trainable (or their trainableWeights are empty); every other layer is frozen.
  for (const l of [root, ...layers, ...tied]) {
    if (!heads.includes(l as Head)) l.trainable = onPath(l);
  }
  for (const head of heads) {
    head.trainable = true; // cascades to a MultiTokenHead's offset heads and unembedding
    for (const part of headParts(head)) part.trainable = false;
    headParts(head).slice(1, -1).forEach((h) => (h.trainable = true)); // offsets 1…k−1 of parallel heads
  }
  // And every variable's own flag, which a custom loop's `optimizer.minimize(f)` (no varList) goes by:
  // a layer's `trainable` setter misses weights it does not own directly (an RNN's cell, for one).
  const trainable = heads.flatMap(draftWeights);
  for (const w of weights) w.trainable = trainable.includes(w);
  refreshCompiled(model);

  return {
    trainable,
    frozen: weights.filter((w, i) => before.weights[i] && !w.trainable),
    variables: trainable.map((w) => w.read() as tf.Variable),
    restore(): void {
      everyLayer.forEach((l, i) => (l.trainable = before.layers[i]!));
      weights.forEach((w, i) => (w.trainable = before.weights[i]!));
      refreshCompiled(model);
    },
  };
}
