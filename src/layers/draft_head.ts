/**
 * The one contract every draft-head layer implements: parallel offset heads (`MultiTokenHead`,
 * any offset kind) and sequential MTP modules (`SequentialMtpHead`). The decoders drive the
 * inference members ({@link InferenceHead}); the heads file, `trainDraftHeads` and the freezing
 * helpers use the members below, so none of them branches on the class.
 *
 * Training is teacher forced: the logits of offset j at position t are computed as if offsets
 * 1…j−1 had drafted the true tokens t+1…t+j−1 (sequential module j is fed the embedding of the
 * token at t+j; parallel heads read only the state at t). That is the quantity greedy acceptance
 * tests: draft j counts only when drafts 1…j−1 were right.
 *
 * Reference: Gloeckle et al. (2024) §2 (parallel heads on a shared unembedding); DeepSeek-AI,
 * "DeepSeek-V3 Technical Report" (2024), §2.2 (sequential modules trained on the true tokens).
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { LayerVariable } from '@tensorflow/tfjs-layers';
import { fail } from '../internal/errors.js';
import type { OffsetHeadKind } from './args.js';
import type { InferenceHead } from './inference_head.js';
import type { SharedUnembedding } from './shared_unembedding.js';

/** What offsets 1…k−1 of a head are: a parallel offset-head kind, or sequential MTP modules. @inline */
export type DraftHeadKind = OffsetHeadKind | 'sequential';

/** The fields that describe a head's draft offsets (the heads file's manifest fields). */
export interface DraftHeadSpec {
  /** Kind of offsets 1…k−1. */
  kind: DraftHeadKind;
  /** Width of `mlp` offsets and of `sequential` modules (absent for other kinds). */
  headHiddenSize?: number;
  /** Rank of `lowRank` offsets (absent for other kinds). */
  rank?: number;
  /** Activation name. */
  activation: string;
}

/** One weight of a head's draft offsets: its heads-file name, shape and variable. */
export interface DraftHeadWeight {
  /** `offset<j>/<name>` (parallel heads) or `module<j>/<name>` (sequential modules), j ≥ 1. */
  name: string;
  /** Its shape. */
  shape: number[];
  /** The layer's variable. */
  variable: LayerVariable;
}

/**
 * A head layer with draft offsets 1…k−1 over the shared unembedding. Offset 0 is the base model's
 * own next-token head and is never part of the draft weights.
 */
export interface DraftHeadLayer extends InferenceHead {
  /** The layer's name in its model. */
  readonly name: string;
  /** Whether the layer has its weights (applied once). */
  readonly built: boolean;
  /** The shared unembedding (offset 0's head; the drafts project with it too). */
  readonly unembedding: SharedUnembedding;
  /** Replaces the draft vocabulary (`null`: the whole vocabulary); not while prepared for a decode. */
  setDraftVocab(ids: readonly number[] | null): void;
  /** Kind, sizes and activation of offsets 1…k−1 (one kind for all of them, else it throws naming the kinds). */
  draftSpec(): DraftHeadSpec;
  /** The weights of offsets 1…k−1 in heads-file order (empty until built). */
  draftWeights(): DraftHeadWeight[];
  /**
   * Teacher-forced logits of offsets 1…k−1 for training: `states` `[m, D]` (trunk states at
   * positions t), `nextTokens` int32 `[m, k−1]` (the true tokens at t+1…t+k−1; parallel heads
   * ignore them) → `[m, k−1, Vd]` over the draft vocabulary (column c is token `draftVocab[c]`;
   * Vd = V without one). Differentiable with respect to {@link DraftHeadLayer.draftWeights};
   * while the head is prepared for a decode the projection uses the prepared copy of the
   * unembedding (so no gradient reaches the unembedding then).
   */
  trainingLogits(states: tf.Tensor2D, nextTokens: tf.Tensor2D): tf.Tensor3D;
  /**
   * The tokens a decode feeds offsets 1…k−1, for training them as they are used: `states` `[m, D]`,
   * `nextTokens` int32 `[m, k−1]` (the true tokens at t+1…t+k−1) → int32 `[m, k−1]`, to pass to
   * {@link DraftHeadLayer.trainingLogits} in place of `nextTokens`. Sequential modules: column 0
   * is the true token at t+1 (the verified token a chain starts from), column j the draft of
   * module j (its argmax over the draft vocabulary) fed column j − 1, as a decode drafts it.
   * Parallel heads are fed no tokens: a copy of `nextTokens`. Integer-valued, so call it outside
   * a gradient tape.
   */
  decodeFeed(states: tf.Tensor2D, nextTokens: tf.Tensor2D): tf.Tensor2D;
}

/** Whether `layer` implements {@link DraftHeadLayer} (duck-typed, so a head from another copy of this module qualifies). */
export function isDraftHeadLayer(layer: unknown): layer is DraftHeadLayer {
  const h = layer as Partial<Record<keyof DraftHeadLayer, unknown>> | null;
  return (
    h !== null &&
    typeof h === 'object' &&
    typeof h.trainingLogits === 'function' &&
    typeof h.draftWeights === 'function' &&
    typeof h.draftSpec === 'function' &&
    typeof h.headArgmax === 'function' &&
    typeof h.prepare === 'function'
  );
}

/**
 * The draft-head layer of `model` (its one `MultiTokenHead` or `SequentialMtpHead`). Errors name
 * `fn`, the `model` argument, and the layers the model has.
 */
export function findDraftHead(fn: string, model: unknown): DraftHeadLayer {
  const layers = (model as { layers?: unknown } | null)?.layers;
  if (model === null || typeof model !== 'object' || !Array.isArray(layers)) {
    fail(TypeError, fn, 'model', 'must be a tf.LayersModel with a MultiTokenHead or a SequentialMtpHead', model);
  }
  const head = (layers as unknown[]).find(isDraftHeadLayer);
  if (head === undefined) {
    const names = (layers as Array<{ getClassName?: () => string }>).map((l) => (typeof l?.getClassName === 'function' ? l.getClassName() : typeof l)).join(', ');
    throw new TypeError(`${fn}: model must have a MultiTokenHead or a SequentialMtpHead layer, but model '${(model as { name?: string }).name}' has layers [${names}].`);
  }
  return head;
}
