/**
 * Draft heads for any loaded model: the head options every loader takes (`DraftHeadOptions`:
 * k, the kind and sizes of offsets 1…k−1, a draft vocabulary, a trained heads file) and the one
 * way they become the loaded model's head. A loader
 *
 *   1. reads them before its checkpoint ({@link readHeadOptions}: every option checked, the heads
 *      file read and checked against the options, defaults applied),
 *   2. fixes them to its checkpoint once the architecture is known ({@link planHeads}: the draft
 *      vocabulary against the vocabulary, the rank against the hidden size, sequential modules
 *      against a tied embedding), and
 *   3. hands {@link buildWithHeads} a function that builds its transformer from a head config:
 *      parallel offsets are built in, sequential modules replace a one-offset head
 *      (`withSequentialHeads`), and the heads file is attached once its base fingerprint matches
 *      (`attachDraftHeads`).
 *
 * So llama2.c and Hugging Face checkpoints take the same options with the same messages, and a
 * heads file trained on one loads on the same weights by any path.
 */
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { checkDraftVocab, sameDraftVocab } from '../internal/draft_vocab.js';
import { SIZE_LIMITS, checkPositiveInteger, fail, show } from '../internal/errors.js';
import { headHiddenSizeArg, OFFSET_HEAD_KINDS } from '../layers/args.js';
import { offsetHeadWeights } from '../layers/parameter_report.js';
import { sequentialModuleWeights } from '../layers/sequential_mtp.js';
import { TRANSFORMER_DEFAULTS, type TransformerConfig } from './config.js';
import { attachParsedDraftHeads, type DraftHeads, type DraftHeadsKind, readDraftHeads, withSequentialHeads } from './draft_heads.js';
import { type BytesSource, readBytes } from './read_bytes.js';

/** The draft-head options of every checkpoint loader (`loadLlama2c`, `loadHfLlama`). @inline */
export interface DraftHeadOptions {
  /** Number k of multi-token heads; offset 0 is the checkpoint's classifier. Default: `TRANSFORMER_DEFAULTS.mtpHeads` (or `draftHeads`' k). */
  mtpHeads?: number;
  /**
   * Kind of offsets 1…k−1: a parallel `OffsetHeadKind`, or `'sequential'` for sequential MTP
   * modules (a `SequentialMtpHead`, see `withSequentialHeads`; the checkpoint's output layer must
   * be its token embedding). Default: `TRANSFORMER_DEFAULTS.headKind` (or `draftHeads`' kind).
   */
  headKind?: DraftHeadsKind;
  /** Width of `mlp` offsets or `sequential` modules: required for those kinds unless `draftHeads` gives it. */
  headHiddenSize?: number;
  /**
   * The old name of `headHiddenSize`. Given with it, the two must be equal.
   * @deprecated Use `headHiddenSize`; `mlpHiddenSize` is accepted until the next minor release.
   */
  mlpHiddenSize?: number;
  /** Rank of `lowRank` offsets (at most the hidden size): required for `headKind: 'lowRank'` unless `draftHeads` gives it. */
  rank?: number;
  /**
   * The draft vocabulary: distinct token ids in [0, vocabulary size) offsets 1…k−1 may propose
   * (see the head's `draftVocab`). Default: `draftHeads`' draft vocabulary when the file has one
   * (then one given here must be the same set), else the whole vocabulary.
   */
  draftVocab?: readonly number[];
  /**
   * Trained draft heads for this checkpoint (a `writeDraftHeads` / `exportDraftHeads` file: bytes
   * or a URL): the head is built with their k, kind, sizes and draft vocabulary, and they are
   * attached after checking that they were trained on these weights (see `attachDraftHeads`).
   * Fields given as well must agree.
   */
  draftHeads?: BytesSource;
}

/** The keys of {@link DraftHeadOptions}, in the order errors list them. @internal */
export const DRAFT_HEAD_OPTION_KEYS = ['mtpHeads', 'headKind', 'headHiddenSize', 'mlpHiddenSize', 'rank', 'draftVocab', 'draftHeads'] as const;

/** Every `options.headKind`: a parallel offset-head kind, or sequential modules. */
const HEAD_KINDS: readonly DraftHeadsKind[] = [...OFFSET_HEAD_KINDS, 'sequential'];

/** The head the options ask for, before the checkpoint is known. @internal */
export interface HeadRequest {
  /** The loader's name, which starts every error. */
  fn: string;
  /** k, offset 0 included. */
  mtpHeads: number;
  /** Kind of offsets 1…k−1. */
  kind: DraftHeadsKind;
  /** Width of `mlp` offsets or `sequential` modules (those kinds only). */
  headHiddenSize?: number;
  /** Rank of `lowRank` offsets (that kind only). */
  rank?: number;
  /** `options.draftVocab` as given (checked by {@link planHeads}). */
  draftVocab?: readonly number[];
  /** The parsed heads file, to attach. */
  heads?: DraftHeads;
}

/** The head to build on a checkpoint: a {@link HeadRequest} with its draft vocabulary resolved. @internal */
export interface HeadPlan extends Omit<HeadRequest, 'draftVocab'> {
  /** The draft vocabulary (increasing ids), or null for the whole vocabulary. */
  draftVocab: number[] | null;
}

/** The head fields of a `TransformerConfig` that `buildWithHeads` asks a loader to build with. @internal */
export type HeadConfig = Required<Pick<TransformerConfig, 'mtpHeads'>> & Pick<TransformerConfig, 'headKind' | 'headHiddenSize' | 'rank' | 'draftVocab'>;

/**
 * Checks the head options (before any file is read), then reads and checks the heads file and
 * resolves k, the kind and the sizes from the options, the file (both given: they must agree)
 * and the defaults. Errors name `fn` and the option.
 * @internal shared by the loaders
 */
export async function readHeadOptions(fn: string, given: DraftHeadOptions): Promise<HeadRequest> {
  const { mlpHiddenSize: _old, ...rest } = given;
  const options: DraftHeadOptions = { ...rest, headHiddenSize: headHiddenSizeArg(fn, given, 'options.') as number | undefined };
  const width = `options.${given.headHiddenSize === undefined && given.mlpHiddenSize !== undefined ? 'mlpHiddenSize' : 'headHiddenSize'}`; // as the caller wrote it
  if (options.headKind !== undefined && !HEAD_KINDS.includes(options.headKind)) {
    fail(TypeError, fn, 'options.headKind', `must be one of ${HEAD_KINDS.map((k) => `"${k}"`).join(', ')}`, options.headKind);
  }
  if (options.mtpHeads !== undefined) checkPositiveInteger(fn, 'options.mtpHeads', options.mtpHeads, SIZE_LIMITS.numHeads);
  if (options.headHiddenSize !== undefined) checkPositiveInteger(fn, width, options.headHiddenSize, SIZE_LIMITS.hiddenSize);
  if (options.rank !== undefined) checkPositiveInteger(fn, 'options.rank', options.rank, SIZE_LIMITS.hiddenSize);
  const file = options.draftHeads === undefined ? undefined : await readBytes(options.draftHeads, fn, 'options.draftHeads');
  const heads = file && readDraftHeads(file.bytes, file.where);
  const m = heads?.manifest;
  const fromFile = { mtpHeads: m?.numHeads, headKind: m?.kind, headHiddenSize: m?.headHiddenSize, rank: m?.rank };
  if (m !== undefined) {
    for (const key of ['mtpHeads', 'headKind', 'headHiddenSize', 'rank'] as const) {
      if (options[key] !== undefined && options[key] !== fromFile[key]) {
        fail(RangeError, fn, key === 'headHiddenSize' ? width : `options.${key}`, `must match options.draftHeads (${show(fromFile[key])}) or be omitted`, options[key]);
      }
    }
  }
  const kind = options.headKind ?? fromFile.headKind ?? TRANSFORMER_DEFAULTS.headKind;
  const headHiddenSize = options.headHiddenSize ?? fromFile.headHiddenSize;
  const rank = options.rank ?? fromFile.rank;
  const widened = kind === 'mlp' || kind === 'sequential';
  if (widened && headHiddenSize === undefined) fail(TypeError, fn, width, `must be set for headKind '${kind}'`, undefined);
  if (!widened && headHiddenSize !== undefined) fail(TypeError, fn, width, `applies only to headKind 'mlp' or 'sequential' (headKind is '${kind}')`, headHiddenSize);
  if (kind === 'lowRank' && rank === undefined) fail(TypeError, fn, 'options.rank', "must be set for headKind 'lowRank'", undefined);
  if (kind !== 'lowRank' && rank !== undefined) fail(TypeError, fn, 'options.rank', `applies only to headKind 'lowRank' (headKind is '${kind}')`, rank);
  return {
    fn,
    mtpHeads: options.mtpHeads ?? fromFile.mtpHeads ?? TRANSFORMER_DEFAULTS.mtpHeads,
    kind,
    ...(headHiddenSize !== undefined ? { headHiddenSize } : {}),
    ...(rank !== undefined ? { rank } : {}),
    ...(options.draftVocab !== undefined ? { draftVocab: options.draftVocab } : {}),
    ...(heads !== undefined ? { heads } : {}),
  };
}

/** What {@link planHeads} needs to know of a checkpoint. @internal */
export interface HeadBase {
  vocabSize: number;
  hiddenSize: number;
  /** Whether the output layer is the token embedding (sequential modules need it). */
  tiedEmbeddings: boolean;
}

/**
 * Fixes a request to a checkpoint, before its weights are read: the draft vocabulary
 * (`options.draftVocab` checked against the vocabulary, or the heads file's; both given: the same
 * set), the rank against the hidden size, and sequential modules against a tied embedding.
 * @internal shared by the loaders
 */
export function planHeads(request: HeadRequest, base: HeadBase): HeadPlan {
  const { fn, draftVocab: option, ...rest } = request;
  if (request.rank !== undefined && request.rank > base.hiddenSize) fail(RangeError, fn, 'options.rank', `must be at most the checkpoint's hidden size (${base.hiddenSize})`, request.rank);
  if (request.kind === 'sequential' && !base.tiedEmbeddings) {
    fail(RangeError, fn, 'options.headKind', "must not be 'sequential' for a checkpoint whose output layer is not its token embedding (sequential modules read the tied embedding)", request.kind);
  }
  const given = option === undefined ? null : checkDraftVocab(fn, 'options.draftVocab', option, base.vocabSize);
  const fromFile = request.heads?.manifest.draftVocab ?? null;
  if (given !== null && fromFile !== null && !sameDraftVocab(given, fromFile)) {
    fail(RangeError, fn, 'options.draftVocab', `must be the same set of ids as options.draftHeads' draftVocab (${fromFile.length} ids) or be omitted`, option);
  }
  return { fn, ...rest, draftVocab: given ?? fromFile };
}

/** Number of float32 values of offsets 1…k−1 of `plan` on a trunk of width `hiddenSize`. @internal */
export function draftParameters(plan: HeadPlan, hiddenSize: number): number {
  const sizes = { rank: plan.rank, headHiddenSize: plan.headHiddenSize };
  const weights = plan.kind === 'sequential' ? sequentialModuleWeights(hiddenSize, plan.headHiddenSize!) : offsetHeadWeights(plan.kind, hiddenSize, sizes);
  return (plan.mtpHeads - 1) * weights.reduce((sum, w) => sum + w.shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * The loaded model with the planned head: `build` makes the transformer from a head config (the
 * planned offsets; for sequential modules one offset, whose head `withSequentialHeads` then
 * replaces), and the heads file, when there is one, is attached (its base fingerprint checked).
 * Whatever fails, nothing built is left behind.
 * @internal shared by the loaders
 */
export async function buildWithHeads(plan: HeadPlan, build: (head: HeadConfig) => LayersModel): Promise<LayersModel> {
  let model: LayersModel;
  if (plan.kind === 'sequential') {
    const base = build({ mtpHeads: 1 });
    try {
      model = withSequentialHeads(base, plan.mtpHeads, plan.headHiddenSize!, plan.draftVocab);
    } catch (error) {
      base.dispose();
      throw error;
    }
  } else {
    model = build({
      mtpHeads: plan.mtpHeads,
      headKind: plan.kind,
      ...(plan.headHiddenSize !== undefined ? { headHiddenSize: plan.headHiddenSize } : {}),
      ...(plan.rank !== undefined ? { rank: plan.rank } : {}),
      draftVocab: plan.draftVocab,
    });
  }
  if (plan.heads !== undefined) {
    try {
      await attachParsedDraftHeads(model, plan.heads, plan.fn, 'options.draftHeads');
    } catch (error) {
      model.dispose();
      throw error;
    }
  }
  return model;
}
