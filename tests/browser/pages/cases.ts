/**
 * One parity case, run identically in Node (cpu, the reference) and in a page (each browser
 * backend): build a model from fixed weights, read its logits on a probe sequence, then decode
 * greedily and speculatively, counting around every decode the live tensors, the awaited
 * readbacks and the synchronous GPU downloads.
 *
 * - tiny: greedy and speculative through `fromLayersModel`.
 * - transformer: greedy on the KV-cached `CachedTransformer`, speculative through
 *   `fromLayersModel` (fixed input length) and, on the `CachedTransformer`, with every kind of
 *   drafter — the heads (a chain of fixed length, `draftLength: 'auto'`, a dynamic tree), prompt
 *   lookup, prompt lookup then the heads, a drafter of the page's own that proposes a small tree —
 *   the heads' ones again under a draft vocabulary without the greedy tokens (no head draft can be
 *   kept), speculative sampling with a seed (plain, and with `topK`/`topP`), and sequential MTP
 *   modules (`withSequentialHeads`) on the same trunk drafting a chain at the tip, with the whole
 *   vocabulary, and with a subset that holds the greedy tokens (greedy and sampling acceptance).
 *   The decodes share one `CachedTransformer` per head (the GPU backends compile each program once
 *   for all of them); their names are {@link DECODES}.
 */
import * as tf from '@tensorflow/tfjs-core';
import { input, model as functionalModel, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import {
  fromLayersModel,
  greedyDecode,
  headsDrafter,
  promptLookupDrafter,
  speculativeDecode,
  type DecodeResult,
  type Drafter,
  type DrafterStats,
  type MultiTokenModel,
  type SpeculativeOptions,
} from '../../../src/decoding/index.js';
import { CachedTransformer, withSequentialHeads, type TransformerConfig } from '../../../src/models/index.js';
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
  /** Drafts per step of every speculative decode but the `'auto'` one (fixed: the same shapes on every backend). */
  draftLength: number;
  /** Names of {@link DECODES}`[kind]` to leave out (default: none). */
  skip?: readonly string[];
}

/** A decode, as plain data, with what happened around it. */
export interface DecodeSummary {
  tokens: number[];
  sources: number[];
  forwards: number;
  accepted: number;
  drafted: number;
  meanAcceptedLength: number;
  acceptanceRates: number[];
  tokensPerSecond: number;
  /** Wall time of the decode, ms (SwiftShader: mostly shader compilation the first time an op meets a shape). */
  wallTimeMs: number;
  /** Steps, drafts and kept drafts per drafter name (`stats.drafters`). */
  drafters: Record<string, DrafterStats>;
  /** Awaited readbacks (`engine.read`: `data()`, `array()`, `bytes()`) during the decode. */
  reads: number;
  /** Synchronous GPU→CPU downloads during the decode (see `countSyncDownloads`; 0 when not counted). */
  syncDownloads: number;
  /** `tf.memory().numTensors` just before and just after the decode. */
  numTensors: { before: number; after: number };
}

/** What came out. */
export interface CaseResult {
  /** Flattened `[1, T, k, V]` logits of the probe (T: its length, or the model's fixed input length). */
  logits: number[];
  /**
   * Greedy and greedy-acceptance decodes by name ({@link DECODES}`[kind].greedy`) — each must
   * equal greedy token for token.
   */
  decodes: Record<string, DecodeSummary>;
  /** Speculative sampling decodes by name ({@link DECODES}`[kind].sampled`): seeded, but compared across backends only loosely. */
  sampled: Record<string, DecodeSummary>;
  /** The draft vocabularies of the `vocab…` decodes (transformer only; built from this page's greedy tokens). */
  draftVocabs: { excluding: number[]; subset: number[] } | null;
  /** Smallest gap between the top two offset-0 logits along the greedy continuation (how far from a tie each argmax was). */
  minMargin: number;
  /** `tf.memory().numTensors` just before the first decode and just after the last. */
  numTensors: { before: number; after: number };
  /** Tensors the whole case left behind (models built and disposed included): `numTensors` at its end minus at its start. */
  leftBehind: number;
  /** Wall time of the whole case, ms. */
  wallTimeMs: number;
}

/**
 * The decodes of each case, by name: `greedy` ones (greedy decoding and greedy-acceptance
 * speculative decoding: each must equal greedy token for token) and `sampled` ones (speculative
 * sampling, seeded: compared across backends only loosely).
 */
export const DECODES = {
  tiny: { greedy: ['greedy', 'speculative'], sampled: [] },
  transformer: {
    greedy: [
      'greedy', // on CachedTransformer
      'speculative', // through fromLayersModel, a fixed input length
      'cachedSpeculative', // the heads, a chain of draftLength
      'auto', // the heads, draftLength 'auto'
      'promptLookup',
      'lookupThenHeads',
      'ownTree', // the page's own drafter, proposing trees
      'tree', // the heads, a dynamic tree
      'vocabHeads', // … and again under a draft vocabulary without the greedy tokens
      'vocabTree',
      'vocabLookupThenHeads',
      'sequential', // sequential MTP modules on the same trunk: the whole vocabulary
      'sequentialSubset', // … a draft vocabulary that holds the greedy tokens
    ],
    sampled: [
      'sampled', // the heads
      'sampledTopKTopP', // the heads, with topK and topP
      'sequentialSampledSubset', // sequential modules under the subset draft vocabulary (q is 0 outside it)
    ],
  },
} as const satisfies Record<CaseSpec['model']['kind'], { greedy: readonly string[]; sampled: readonly string[] }>;

/** Greedy-acceptance decodes whose heads draft within the vocabulary without any greedy token: none of the heads' drafts can be kept. */
export const EXCLUDING_VOCAB_DECODES = ['vocabHeads', 'vocabTree', 'vocabLookupThenHeads'] as const;

/** Width of the sequential modules' MLP (freshly initialised: a fresh module passes its state through, so its drafts repeat the verifier's token). */
const SEQUENTIAL_WIDTH = 16;

/** Name of the page's own drafter in `stats.drafters`. */
export const OWN_DRAFTER = 'follow-or-repeat';

/**
 * A drafter of one's own, proposing a small tree under the committed text: the last token twice
 * (runs repeat), and beside it the token that followed the last token the previous time it
 * appeared (the first prompt token when it never did; dropped by the library when it repeats the
 * sibling).
 */
const followOrRepeat: Drafter = {
  name: OWN_DRAFTER,
  propose({ tokens, maxDepth }) {
    const last = tokens[tokens.length - 1]!;
    if (maxDepth < 2) return [last];
    const at = tokens.lastIndexOf(last, tokens.length - 2);
    const follow = at >= 0 ? tokens[at + 1]! : tokens[0]!;
    return { tokens: [last, last, follow], parents: [-1, 0, -1] };
  },
};

function summary(r: DecodeResult, counted: Pick<DecodeSummary, 'reads' | 'syncDownloads' | 'numTensors'>): DecodeSummary {
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
    wallTimeMs: s.wallTimeMs,
    drafters: s.drafters ?? {},
    ...counted,
  };
}

const READS = Symbol('tests/browser readback counter');

/**
 * Counts awaited readbacks: every `engine.read` (what `data()`, `array()` and `bytes()` call),
 * whatever the backend — the decoders promise one per step. Installed once per engine; returns a
 * function reading the count.
 */
export function countReads(): () => number {
  const engine = tf.engine() as unknown as { read: (dataId: object) => Promise<unknown>; [READS]?: { count: number } };
  let counter = engine[READS];
  if (counter === undefined) {
    const c = (counter = { count: 0 });
    const read = engine.read.bind(engine);
    engine.read = (dataId: object) => {
      c.count++;
      return read(dataId);
    };
    engine[READS] = c;
  }
  const c = counter;
  return () => c.count;
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

/** The draft-vocabulary setter of a model's head (`MultiTokenHead` or `SequentialMtpHead`, layer `mtp_head`). */
function headOf(model: LayersModel): { setDraftVocab(ids: readonly number[] | null): void } {
  return model.getLayer('mtp_head') as unknown as { setDraftVocab(ids: readonly number[] | null): void };
}

/**
 * Two draft vocabularies from the greedy continuation: every id but the greedy tokens (the heads
 * can then never draft what the verifier picks), and a subset that holds them (every third id
 * and the greedy tokens: drafts can be kept, and subset indices must map back to token ids).
 */
function draftVocabsOf(vocabSize: number, greedy: readonly number[]): { excluding: number[]; subset: number[] } {
  const likely = new Set(greedy);
  const ids = Array.from({ length: vocabSize }, (_, t) => t);
  return { excluding: ids.filter((t) => !likely.has(t)), subset: ids.filter((t) => likely.has(t) || t % 3 === 0) };
}

/** One decode of a case. */
interface Run {
  name: string;
  model: () => MultiTokenModel;
  /** `greedy`: `greedyDecode`; otherwise `speculativeDecode` with these options (on top of the token budget). */
  options: SpeculativeOptions | 'greedy';
  /** The draft vocabulary set on `head` for this decode (removed after it). */
  vocab?: 'excluding' | 'subset';
  head?: LayersModel;
  /** A sampling decode: reported under `sampled`. */
  sampled?: boolean;
}

/** Runs the case on the current backend; `downloads` reads a sync-download counter, if any. */
export async function runCase(spec: CaseSpec, downloads: () => number = () => 0): Promise<CaseResult> {
  const start = performance.now();
  const tensorsAtStart = tf.memory().numTensors;
  const reads = countReads();
  const model = spec.model.kind === 'tiny' ? buildTiny(spec.model.config) : buildTransformer(spec.model.config);
  setFixedWeights(model, spec.weights);
  const probeIds = padded(model, spec.probe);
  const probe = tf.tidy(() => model.predict(tf.tensor2d([probeIds], [1, probeIds.length], 'int32')) as tf.Tensor); // [1, T, k, V]
  const logits = Array.from(await probe.data());
  probe.dispose();

  // The transformer's greedy baseline runs on the KV cache only, and its adapter sees a fixed
  // input length: every new sequence length is a fresh set of GPU programs to compile, and
  // SwiftShader compiles slowly. Every other decode reuses the one CachedTransformer.
  const L = spec.draftLength;
  // sequential MTP modules on the transformer's trunk and offset 0 (their weights are made here, before the tensors are counted)
  const sequential = spec.model.kind === 'transformer' ? withSequentialHeads(model, spec.model.config.mtpHeads ?? 4, SEQUENTIAL_WIDTH) : null;
  const models: CachedTransformer[] = [];
  let fixedLength: LayersModel | null = null;
  let runs: Run[];
  if (spec.model.kind === 'tiny') {
    runs = [
      { name: 'greedy', model: () => fromLayersModel(model), options: 'greedy' },
      { name: 'speculative', model: () => fromLayersModel(model), options: { draftLength: L } },
    ];
  } else {
    const cached = new CachedTransformer(model);
    const chained = new CachedTransformer(sequential!);
    models.push(cached, chained);
    const tree = { topK: 3, maxNodes: 6 };
    const list = () => [promptLookupDrafter(), headsDrafter()];
    const sampling = { acceptance: 'sampling', temperature: 1, seed: 7, draftLength: L } as const;
    const nucleus = { ...sampling, topK: 8, topP: 0.9 };
    runs = [
      { name: 'greedy', model: () => cached, options: 'greedy' },
      { name: 'speculative', model: () => fromLayersModel((fixedLength = withFixedLength(model, spec.prompt.length + spec.maxNewTokens))), options: { draftLength: L } },
      { name: 'cachedSpeculative', model: () => cached, options: { draftLength: L } },
      { name: 'auto', model: () => cached, options: {} }, // draftLength 'auto', the default
      { name: 'promptLookup', model: () => cached, options: { drafter: promptLookupDrafter(), draftLength: L } },
      { name: 'lookupThenHeads', model: () => cached, options: { drafter: list(), draftLength: L } },
      { name: 'ownTree', model: () => cached, options: { drafter: followOrRepeat, draftLength: L } },
      { name: 'tree', model: () => cached, options: { tree, draftLength: L } },
      { name: 'vocabHeads', model: () => cached, options: { draftLength: L }, vocab: 'excluding', head: model },
      { name: 'vocabTree', model: () => cached, options: { tree, draftLength: L }, vocab: 'excluding', head: model },
      { name: 'vocabLookupThenHeads', model: () => cached, options: { drafter: list(), draftLength: L }, vocab: 'excluding', head: model },
      { name: 'sampled', model: () => cached, options: sampling, sampled: true },
      { name: 'sampledTopKTopP', model: () => cached, options: nucleus, sampled: true },
      { name: 'sequential', model: () => chained, options: { draftLength: L } },
      { name: 'sequentialSubset', model: () => chained, options: { draftLength: L }, vocab: 'subset', head: sequential! },
      { name: 'sequentialSampledSubset', model: () => chained, options: sampling, vocab: 'subset', head: sequential!, sampled: true },
    ];
  }
  runs = runs.filter((r) => !(spec.skip ?? []).includes(r.name));
  const options = { maxNewTokens: spec.maxNewTokens };
  const before = tf.memory().numTensors;
  const decodes: Record<string, DecodeSummary> = {};
  const sampled: Record<string, DecodeSummary> = {};
  let draftVocabs: CaseResult['draftVocabs'] = null;
  for (const run of runs) {
    const m = run.model();
    if (run.vocab !== undefined) {
      draftVocabs ??= draftVocabsOf(m.vocabSize, decodes.greedy.tokens);
      headOf(run.head!).setDraftVocab(draftVocabs[run.vocab]);
    }
    const counted = { reads: reads(), syncDownloads: downloads(), numTensors: tf.memory().numTensors };
    let r: DecodeResult;
    try {
      r = run.options === 'greedy' ? await greedyDecode(m, spec.prompt, options) : await speculativeDecode(m, spec.prompt, { ...options, ...run.options });
    } finally {
      if (run.vocab !== undefined) headOf(run.head!).setDraftVocab(null);
    }
    const s = summary(r, {
      reads: reads() - counted.reads,
      syncDownloads: downloads() - counted.syncDownloads,
      numTensors: { before: counted.numTensors, after: tf.memory().numTensors },
    });
    (run.sampled ? sampled : decodes)[run.name] = s;
  }
  const after = tf.memory().numTensors;
  for (const m of models) m.dispose();
  const margin = await minMargin(model, spec.prompt, decodes.greedy.tokens);
  sequential?.getLayer('mtp_head').dispose(); // the modules only: the trunk is the base model's
  // the fixed-length wrapper applied `model` as a layer: disposing the wrapper disposes `model` too (tfjs-layers reference counts)
  ((fixedLength as LayersModel | null) ?? model).dispose();
  const leftBehind = tf.memory().numTensors - tensorsAtStart;
  return { logits, decodes, sampled, draftVocabs, minMargin: margin, numTensors: { before, after }, leftBehind, wallTimeMs: performance.now() - start };
}
