/**
 * One parity case, run identically in Node (cpu, the reference) and in a page (each browser
 * backend): build a model from fixed weights, read its logits on a probe sequence, then decode
 * greedily and speculatively — through `fromLayersModel` and, for the transformer, through the
 * KV-cached `CachedTransformer` — counting live tensors around the decodes.
 */
import * as tf from '@tensorflow/tfjs-core';
import { input, model as functionalModel, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { fromLayersModel, greedyDecode, speculativeDecode, type DecodeResult, type MultiTokenModel } from '../../../src/decoding/index.js';
import { CachedTransformer, type TransformerConfig } from '../../../src/models/index.js';
import { buildTiny, buildTransformer, setFixedWeights, type TinyConfig } from './models.js';

/** What to run. */
export interface CaseSpec {
  model: { kind: 'tiny'; config: TinyConfig } | { kind: 'transformer'; config: TransformerConfig };
  /** From `fixedWeights`, one array per model weight. */
  weights: number[][];
  /** Token ids whose logits are compared across backends. */
  probe: number[];
  prompt: number[];
  maxNewTokens: number;
  draftLength: number;
}

/** A decode, as plain data. */
export interface DecodeSummary {
  tokens: number[];
  sources: number[];
  forwards: number;
  accepted: number;
  drafted: number;
  meanAcceptedLength: number;
  acceptanceRates: number[];
  tokensPerSecond: number;
}

/** What came out. */
export interface CaseResult {
  /** Flattened `[1, T, k, V]` logits of the probe (T: its length, or the model's fixed input length). */
  logits: number[];
  /**
   * Decodes by name: `greedy` and `speculative` (through `fromLayersModel`; for the transformer
   * `greedy` runs on `CachedTransformer`), and for the transformer `cachedSpeculative`.
   */
  decodes: Record<string, DecodeSummary>;
  /** Smallest gap between the top two offset-0 logits along the greedy continuation (how far from a tie each argmax was). */
  minMargin: number;
  /** `tf.memory().numTensors` just before the first decode and just after the last. */
  numTensors: { before: number; after: number };
  /** Synchronous GPU→CPU downloads during the decodes (see `countSyncDownloads`; 0 when not counted). */
  syncDownloads: number;
  /** Wall time of the whole case, ms. */
  wallTimeMs: number;
}

function summary(r: DecodeResult): DecodeSummary {
  const s = r.stats;
  return {
    tokens: r.tokens,
    sources: r.sources,
    forwards: s.forwards,
    accepted: s.accepted,
    drafted: s.drafted,
    meanAcceptedLength: s.meanAcceptedLength,
    acceptanceRates: s.acceptanceRates,
    tokensPerSecond: s.tokensPerSecond,
  };
}

/** `ids` right-padded with 0 to the model's fixed input length, if it has one (causal: padding changes nothing before it). */
function padded(model: LayersModel, ids: number[]): number[] {
  const length = model.inputs[0].shape[1];
  return length === null ? ids : [...ids, ...new Array<number>(length - ids.length).fill(0)];
}

/** Smallest top-1 minus top-2 offset-0 logit over the positions that chose `continuation`. */
async function minMargin(model: LayersModel, prompt: number[], continuation: number[]): Promise<number> {
  const ids = padded(model, [...prompt, ...continuation.slice(0, -1)]);
  const gaps = tf.tidy(() => {
    const logits = model.predict(tf.tensor2d([ids], [1, ids.length], 'int32')) as tf.Tensor4D; // [1, T, k, V]
    const next = tf.slice(logits, [0, prompt.length - 1, 0, 0], [1, continuation.length, 1, -1]); // [1, n, 1, V]
    const { values } = tf.topk(tf.reshape(next, [continuation.length, -1]), 2); // [n, 2]
    return tf.sub(tf.slice(values, [0, 0], [-1, 1]), tf.slice(values, [0, 1], [-1, 1])); // [n, 1]
  });
  const data = await gaps.data();
  gaps.dispose();
  return Math.min(...data);
}

/**
 * The same model (same weights) behind a fixed-length input `[batch, length]`: `fromLayersModel`
 * then pads every call to that length, so the GPU backends compile each program once instead
 * of once per sequence length. Causal, so the right padding changes nothing before it.
 */
function withFixedLength(model: LayersModel, length: number): LayersModel {
  const ids = input({ shape: [length], dtype: 'int32' }); // [B, length]
  return functionalModel({ inputs: ids, outputs: model.apply(ids) as SymbolicTensor }); // [B, length, k, V]
}

/** Runs the case on the current backend; `downloads` reads a sync-download counter, if any. */
export async function runCase(spec: CaseSpec, downloads: () => number = () => 0): Promise<CaseResult> {
  const start = performance.now();
  const model = spec.model.kind === 'tiny' ? buildTiny(spec.model.config) : buildTransformer(spec.model.config);
  setFixedWeights(model, spec.weights);
  const probeIds = padded(model, spec.probe);
  const probe = model.predict(tf.tensor2d([probeIds], [1, probeIds.length], 'int32')) as tf.Tensor;
  const logits = Array.from(await probe.data());
  probe.dispose();

  const options = { maxNewTokens: spec.maxNewTokens };
  // The transformer's greedy baseline runs on the KV cache only, and its adapter sees a fixed
  // input length: every new sequence length is a fresh set of GPU programs to compile, and
  // SwiftShader compiles slowly.
  let cached: CachedTransformer | null = null;
  const decoders: [string, () => MultiTokenModel, 'greedy' | 'speculative'][] =
    spec.model.kind === 'tiny'
      ? [
          ['greedy', () => fromLayersModel(model), 'greedy'],
          ['speculative', () => fromLayersModel(model), 'speculative'],
        ]
      : [
          ['greedy', () => (cached ??= new CachedTransformer(model)), 'greedy'],
          ['speculative', () => fromLayersModel(withFixedLength(model, spec.prompt.length + spec.maxNewTokens)), 'speculative'],
          ['cachedSpeculative', () => (cached ??= new CachedTransformer(model)), 'speculative'],
        ];
  const before = tf.memory().numTensors;
  const downloadsBefore = downloads();
  const decodes: Record<string, DecodeSummary> = {};
  for (const [name, make, kind] of decoders) {
    const m = make();
    const r = kind === 'greedy' ? await greedyDecode(m, spec.prompt, options) : await speculativeDecode(m, spec.prompt, { ...options, draftLength: spec.draftLength });
    decodes[name] = summary(r);
  }
  const after = tf.memory().numTensors;
  const syncDownloads = downloads() - downloadsBefore;
  (cached as CachedTransformer | null)?.dispose();
  const margin = await minMargin(model, spec.prompt, decodes.greedy.tokens);
  model.dispose();
  return { logits, decodes, minMargin: margin, numTensors: { before, after }, syncDownloads, wallTimeMs: performance.now() - start };
}
