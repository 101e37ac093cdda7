/**
 * Draft heads as a small file of their own, separate from the base model: `exportDraftHeads`
 * writes the trained offsets 1…k−1 of a model's `MultiTokenHead` (or `SequentialMtpHead`) and
 * its draft vocabulary, `attachDraftHeads` writes them back into a model of the same base
 * (checked by a fingerprint of the base weights), and `readDraftHeads` parses and checks a file
 * without a model (what `loadLlama2c` uses to build the right head before attaching);
 * `writeDraftHeads` writes parsed or freshly trained heads (`trainDraftHeads`' result) as a file.
 *
 * Format (little-endian): the 8 ASCII bytes `MTPHEADS`, a uint32 byte length n, n bytes of
 * UTF-8 JSON (the {@link DraftHeadsManifest}), zero padding to a multiple of 4, then the float32
 * values of every weight in manifest order, row-major. Manifest versions: 1 (the heads), and 2,
 * which may also carry `draftVocab`, the JSON array of token ids (increasing, distinct, in
 * [0, base.vocabSize)) the heads draft from. Both are read; version 2 is written.
 *
 * Reference: Cai et al., "Medusa" (2024), §2.3 (heads trained on a frozen base ship apart from it).
 */
import * as tf from '@tensorflow/tfjs-core';
import { model as functionalModel, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { checkDraftVocab } from '../internal/draft_vocab.js';
import { checkInteger, checkPositiveInteger, fail, show, SIZE_LIMITS } from '../internal/errors.js';
import { checkJsonText } from '../internal/json.js';
import { headHiddenSizeArg, OFFSET_HEAD_KINDS, type OffsetHeadKind } from '../layers/args.js';
import { type DraftHeadKind, type DraftHeadLayer, findDraftHead } from '../layers/draft_head.js';
import { offsetHeadWeights } from '../layers/parameter_report.js';
import { SequentialMtpHead, sequentialModuleWeights } from '../layers/sequential_mtp.js';
import { type BytesSource, readBytes } from './read_bytes.js';
import { headSeed, LAYER_NAMES } from './transformer.js';

/** The file's first 8 bytes. */
const MAGIC = 'MTPHEADS';
/** Value of `manifest.format`. */
export const DRAFT_HEADS_FORMAT = 'tfjs-mtp-draft-heads';
/** The manifest version this library writes. */
const VERSION = 2;
/** The manifest versions it reads: 1 (no draft vocabulary) and 2. */
const VERSIONS: readonly number[] = [1, 2];
/**
 * Largest manifest accepted (bytes): a few hundred bytes per offset, plus a draft vocabulary of
 * up to `SIZE_LIMITS.vocabSize` ids of at most 7 digits and a comma each (8 MiB).
 */
const MAX_MANIFEST_BYTES = 1 << 24;

/** What a draft-heads file holds: parallel offset heads of one kind, or sequential MTP modules. @inline */
export type DraftHeadsKind = DraftHeadKind;

/** One stored weight of a draft-heads file. @inline */
export interface DraftHeadsWeight {
  /** `offset<j>/<name>` (parallel heads) or `module<j>/<name>` (sequential modules). */
  name: string;
  /** Its shape; the values are row-major float32. */
  shape: number[];
}

/** The JSON part of a draft-heads file. @inline */
export interface DraftHeadsManifest {
  /** Always `'tfjs-mtp-draft-heads'`. */
  format: 'tfjs-mtp-draft-heads';
  /** Format version: 1, or 2 (written by this library; may carry `draftVocab`). */
  version: number;
  /** Number of offsets k of the head they belong to (offset 0 is the base model's and is not stored). */
  numHeads: number;
  /** Kind of offsets 1…k−1: a parallel offset-head kind, or `sequential` (a `SequentialMtpHead`'s modules). */
  kind: DraftHeadsKind;
  /** Width of `mlp` heads and of `sequential` modules (absent for other kinds; the file's key is `mlpHiddenSize`). */
  headHiddenSize?: number;
  /** Rank of `lowRank` heads (absent for other kinds). */
  rank?: number;
  /** Activation name of the heads. */
  activation: string;
  /** The base model they were trained on. */
  base: {
    /** Hidden size D. */
    hiddenSize: number;
    /** Vocabulary size V. */
    vocabSize: number;
    /** A fingerprint of the base model's weights (a hash of their values, checked on attach). */
    fingerprint: string;
  };
  /** Every stored weight, in file order. */
  weights: DraftHeadsWeight[];
  /**
   * Version 2: the draft vocabulary the heads were trained to draft from (increasing token ids in
   * [0, base.vocabSize)); absent for the whole vocabulary. `attachDraftHeads` sets it on the head.
   */
  draftVocab?: number[];
  /** Free-form facts about training (copied, never interpreted). */
  training?: Record<string, unknown>;
}

/** A parsed draft-heads file. */
export interface DraftHeads {
  /** The checked manifest. */
  manifest: DraftHeadsManifest;
  /** The values of each weight of `manifest.weights`, by name. */
  values: Map<string, Float32Array>;
}

function headOf(fn: string, model: LayersModel): DraftHeadLayer {
  return findDraftHead(fn, model);
}

/**
 * The model `base` with its head replaced by sequential MTP modules (`SequentialMtpHead`, tied to
 * the trunk's token embedding, freshly initialised): the same trunk layer (shared, not copied)
 * and the same offset 0. Attach trained modules with {@link attachDraftHeads}.
 * @param base A model from `loadLlama2c` / `createTransformer` with tied embeddings.
 * @param numHeads k, offset 0 included (≥ 2).
 * @param headHiddenSize Width H of each module's MLP.
 * @param draftVocab The modules' draft vocabulary (see `SequentialMtpHeadArgs.draftVocab`); omitted or `null`: the whole vocabulary.
 * @param seed Integer seed of the modules' random initial values (default 0: the same modules every call).
 */
export function withSequentialHeads(base: LayersModel, numHeads: number, headHiddenSize: number, draftVocab?: readonly number[] | null, seed = 0): LayersModel {
  const fn = 'withSequentialHeads';
  const head = headOf(fn, base);
  if (!head.unembedding.isTied) fail(RangeError, fn, 'base', 'must tie its unembedding to the token embedding (sequential modules read that embedding)', base.name);
  const vocab = draftVocab === undefined || draftVocab === null ? null : checkDraftVocab(fn, 'draftVocab', draftVocab, head.vocabSize);
  const trunk = base.getLayer(LAYER_NAMES.trunk);
  const sequential = new SequentialMtpHead({ numHeads, vocabSize: head.vocabSize, headHiddenSize, tiedTo: trunk, name: LAYER_NAMES.head, seed: headSeed(checkInteger(fn, 'seed', seed, -(2 ** 31), 2 ** 31 - 1)), ...(vocab !== null ? { draftVocab: vocab } : {}) });
  const logits = sequential.apply([trunk.output as SymbolicTensor, base.inputs[0]!]) as SymbolicTensor; // [B, T, k, V]: teacher forced by the input ids (fit), see SequentialMtpHead.call
  return functionalModel({ inputs: base.inputs, outputs: logits, name: base.name });
}

/** 64-bit FNV-1a (as two 32-bit halves) over the bytes of `data`, continuing from `state`. */
function fnv1a(state: [number, number], data: Uint8Array): void {
  let [a, b] = state;
  for (let i = 0; i < data.length; i++) {
    a = Math.imul(a ^ data[i]!, 0x01000193) >>> 0;
    b = Math.imul(b ^ data[i]!, 0x01000193) >>> 0;
    b = (b + (a >>> 7)) >>> 0; // mixes the halves, so the pair acts as one wider hash
  }
  state[0] = a;
  state[1] = b;
}

/**
 * A fingerprint of a model's base weights: every weight except those of draft offsets 1…k−1,
 * names, shapes and float32 bits hashed in order. Two models that predict the next token
 * identically (the same trunk and offset 0) share it; any changed weight changes it.
 * @param model The model (a `MultiTokenHead` model, e.g. from `loadLlama2c`).
 * @returns 16 hex digits.
 */
export async function baseFingerprint(model: LayersModel): Promise<string> {
  const head = headOf('baseFingerprint', model);
  const drafts = new Set(head.draftWeights().map((w) => w.variable.id));
  const state: [number, number] = [0x811c9dc5, 0xcbf29ce4];
  const encoder = new TextEncoder();
  for (const w of model.weights) {
    if (drafts.has(w.id)) continue;
    fnv1a(state, encoder.encode(`${w.shape.join('x')};`));
    const values = (await w.read().data()) as Float32Array;
    fnv1a(state, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }
  return state.map((x) => x.toString(16).padStart(8, '0')).join('');
}

/**
 * Writes offsets 1…k−1 of `model`'s head (one kind for all of them), and its draft vocabulary
 * when it has one, as a draft-heads file (manifest version 2).
 * @param model A built model whose draft offsets were trained (its base is fingerprinted).
 * @param training Optional facts about training to store in the manifest (JSON values).
 * @returns The file's bytes.
 */
export async function exportDraftHeads(model: LayersModel, training?: Record<string, unknown>): Promise<Uint8Array> {
  return writeDraftHeads(await modelDraftHeads('exportDraftHeads', model, undefined, training));
}

/**
 * The draft heads of `model` (offsets 1…k−1 of its head, its draft vocabulary, the fingerprint of
 * its base) as a {@link DraftHeads}: the manifest and a copy of every weight's values.
 * @param fingerprint The base's {@link baseFingerprint} when the caller has it (computed otherwise).
 * @internal shared with `trainDraftHeads`
 */
export async function modelDraftHeads(fn: string, model: LayersModel, fingerprint?: string, training?: Record<string, unknown>): Promise<DraftHeads> {
  const head = headOf(fn, model);
  if (!head.built) throw new Error(`${fn}: model's MultiTokenHead must be built, but it is not.`);
  if (head.numHeads < 2) fail(RangeError, fn, 'model', 'must have at least 2 heads (offset 0 is the base model’s)', head.numHeads);
  const sizes = headFields(fn, head);
  const [vocabSize, hiddenSize] = head.unembedding.matrix().shape as [number, number];
  const weights = head.draftWeights();
  const manifest: DraftHeadsManifest = {
    format: DRAFT_HEADS_FORMAT,
    version: VERSION,
    numHeads: head.numHeads,
    ...sizes,
    base: { hiddenSize, vocabSize, fingerprint: fingerprint ?? (await baseFingerprint(model)) },
    weights: weights.map(({ name, shape }) => ({ name, shape: [...shape] })),
    ...(head.draftVocab !== null ? { draftVocab: [...head.draftVocab] } : {}),
    ...(training !== undefined ? { training } : {}),
  };
  const values = new Map<string, Float32Array>();
  for (const w of weights) values.set(w.name, Float32Array.from((await w.variable.read().data()) as Float32Array)); // a copy: later training does not change it
  return { manifest, values };
}

/**
 * Writes draft heads — what `trainDraftHeads` returns — as a draft-heads file
 * (manifest version 2), after checking the manifest and every weight's values (length, finite).
 * @param heads The manifest and the values of each of its weights.
 * @returns The file's bytes (`attachDraftHeads`, `loadLlama2c({ draftHeads })` and `loadHfLlama({ draftHeads })` read them).
 */
export function writeDraftHeads(heads: DraftHeads): Uint8Array {
  const fn = 'writeDraftHeads';
  if (heads === null || typeof heads !== 'object' || !(heads.values instanceof Map)) fail(TypeError, fn, 'heads', 'must be { manifest, values } (values a Map of Float32Array)', heads);
  const manifest = { ...checkManifest(`${fn}: heads`, heads.manifest), version: VERSION };
  const arrays = manifest.weights.map((w) => {
    const values = heads.values.get(w.name);
    const size = w.shape.reduce((a, b) => a * b, 1);
    if (!(values instanceof Float32Array) || values.length !== size) fail(RangeError, fn, `heads weight ${w.name}`, `must be a Float32Array of ${size} values`, values);
    const bad = values.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) fail(RangeError, fn, `heads weight ${w.name}[${bad}]`, 'must be a finite float32', values[bad]);
    return values;
  });
  const json = new TextEncoder().encode(JSON.stringify(toFile(manifest)));
  const dataStart = 12 + json.length + ((4 - (json.length % 4)) % 4);
  const elements = arrays.reduce((sum, a) => sum + a.length, 0);
  const bytes = new Uint8Array(dataStart + 4 * elements);
  bytes.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(bytes.buffer).setUint32(8, json.length, true);
  bytes.set(json, 12);
  const floats = new Float32Array(bytes.buffer, dataStart, elements); // the platform is little-endian (tfjs requires it)
  let at = 0;
  for (const a of arrays) {
    floats.set(a, at);
    at += a.length;
  }
  return bytes;
}

/**
 * The manifest as the file stores it: the heads' width under its file key `mlpHiddenSize` (the
 * key of versions 1 and 2, which every reader of those versions knows), in the same place.
 */
function toFile(manifest: DraftHeadsManifest): Record<string, unknown> {
  return Object.fromEntries(Object.entries(manifest).map(([key, value]) => [key === 'headHiddenSize' ? 'mlpHiddenSize' : key, value]));
}

/** The manifest's head fields of a model's head: kind, sizes, activation. */
function headFields(fn: string, head: DraftHeadLayer): Pick<DraftHeadsManifest, 'kind' | 'headHiddenSize' | 'rank' | 'activation'> {
  try {
    return head.draftSpec();
  } catch (error) {
    throw new RangeError(`${fn}: model must have one kind for offsets 1…k−1 (${(error as Error).message})`);
  }
}

/** Every kind a file may hold. */
const DRAFT_KINDS: readonly DraftHeadsKind[] = [...OFFSET_HEAD_KINDS, 'sequential'];

/** `value` as JSON for a message, or as {@link show} renders it when it cannot be written (nested too deep, a cycle). */
function jsonOrShow(value: unknown): unknown {
  try {
    return JSON.stringify(value);
  } catch {
    return value;
  }
}

/** Checks a manifest field by field; errors name `where` and the field. */
function checkManifest(where: string, m: unknown): DraftHeadsManifest {
  if (m === null || typeof m !== 'object' || Array.isArray(m)) fail(TypeError, where, 'manifest', 'must be a JSON object', m);
  const o = m as Record<string, unknown>;
  if (o['format'] !== DRAFT_HEADS_FORMAT) fail(TypeError, where, 'manifest.format', `must be "${DRAFT_HEADS_FORMAT}"`, o['format']);
  if (!VERSIONS.includes(o['version'] as number)) fail(RangeError, where, 'manifest.version', `must be one of ${VERSIONS.join(', ')}`, o['version']);
  const version = o['version'] as number;
  const numHeads = checkInteger(where, 'manifest.numHeads', o['numHeads'], 2, SIZE_LIMITS.numHeads);
  const kind = o['kind'];
  if (!DRAFT_KINDS.includes(kind as DraftHeadsKind)) fail(TypeError, where, 'manifest.kind', `must be one of ${DRAFT_KINDS.join(', ')}`, kind);
  const base = o['base'] as Record<string, unknown> | undefined;
  if (base === null || typeof base !== 'object') fail(TypeError, where, 'manifest.base', 'must be an object', base);
  const hiddenSize = checkPositiveInteger(where, 'manifest.base.hiddenSize', base['hiddenSize'], SIZE_LIMITS.hiddenSize);
  const vocabSize = checkPositiveInteger(where, 'manifest.base.vocabSize', base['vocabSize'], SIZE_LIMITS.vocabSize);
  if (typeof base['fingerprint'] !== 'string' || !/^[0-9a-f]{16}$/.test(base['fingerprint'])) {
    fail(TypeError, where, 'manifest.base.fingerprint', 'must be 16 lowercase hex digits', base['fingerprint']);
  }
  if (typeof o['activation'] !== 'string') fail(TypeError, where, 'manifest.activation', 'must be a string', o['activation']);
  // The file stores the width as `mlpHiddenSize` (see toFile); an in-memory manifest has `headHiddenSize`.
  const width = headHiddenSizeArg(where, o, 'manifest.');
  const widthKey = o['headHiddenSize'] !== undefined && o['headHiddenSize'] !== null ? 'headHiddenSize' : 'mlpHiddenSize';
  const sizes = {
    ...(width !== undefined ? { headHiddenSize: checkPositiveInteger(where, `manifest.${widthKey}`, width, SIZE_LIMITS.hiddenSize) } : {}),
    ...(o['rank'] !== undefined ? { rank: checkPositiveInteger(where, 'manifest.rank', o['rank'], hiddenSize) } : {}),
  };
  if ((kind === 'mlp' || kind === 'sequential') && sizes.headHiddenSize === undefined) fail(TypeError, where, 'manifest.headHiddenSize', `must be set for kind '${kind}'`, undefined);
  if (kind === 'lowRank' && sizes.rank === undefined) fail(TypeError, where, 'manifest.rank', "must be set for kind 'lowRank'", undefined);
  // The weights must be exactly those of k−1 offsets of this kind, in order.
  const specs = kind === 'sequential' ? sequentialModuleWeights(hiddenSize, sizes.headHiddenSize!) : offsetHeadWeights(kind as OffsetHeadKind, hiddenSize, { rank: sizes.rank, headHiddenSize: sizes.headHiddenSize });
  const prefix = kind === 'sequential' ? 'module' : 'offset';
  const expected = Array.from({ length: numHeads - 1 }, (_, i) => specs.map((s) => ({ name: `${prefix}${i + 1}/${s.name}`, shape: s.shape }))).flat();
  const weights = o['weights'];
  if (!Array.isArray(weights) || weights.length !== expected.length) {
    fail(RangeError, where, 'manifest.weights', `must list the ${expected.length} weights of ${numHeads - 1} '${String(kind)}' offsets`, weights);
  }
  expected.forEach((e, i) => {
    const w = weights[i] as { name?: unknown; shape?: unknown } | null;
    const same = w !== null && typeof w === 'object' && w.name === e.name && Array.isArray(w.shape) && w.shape.length === e.shape.length && w.shape.every((d, n) => d === e.shape[n]);
    if (!same) fail(RangeError, where, `manifest.weights[${i}]`, `must be { name: "${e.name}", shape: [${e.shape.join(', ')}] }`, jsonOrShow(w));
  });
  let draftVocab: number[] | undefined;
  if (o['draftVocab'] !== undefined) {
    if (version < 2) throw new RangeError(`${where}: manifest.draftVocab needs manifest.version 2 (version 1 has no draft vocabulary), but got version ${version}.`);
    draftVocab = checkDraftVocab(where, 'manifest.draftVocab', o['draftVocab'], vocabSize);
  }
  return {
    format: DRAFT_HEADS_FORMAT,
    version,
    numHeads,
    kind: kind as DraftHeadsKind,
    ...sizes,
    activation: o['activation'] as string,
    base: { hiddenSize, vocabSize, fingerprint: base['fingerprint'] as string },
    weights: expected,
    ...(draftVocab !== undefined ? { draftVocab } : {}),
    ...(o['training'] !== null && typeof o['training'] === 'object' ? { training: o['training'] as Record<string, unknown> } : {}),
  };
}

/**
 * Parses and checks a draft-heads file (magic, manifest, sizes, finite values) without a model.
 * @param bytes The file.
 * @param where Prefix of error messages (default `readDraftHeads: bytes`).
 */
export function readDraftHeads(bytes: Uint8Array, where = 'readDraftHeads: bytes'): DraftHeads {
  if (!(bytes instanceof Uint8Array)) fail(TypeError, where, 'bytes', 'must be a Uint8Array', bytes);
  const head = bytes.subarray(0, MAGIC.length);
  if (!head.every((b, i) => b === MAGIC.charCodeAt(i))) {
    const magic = new TextDecoder().decode(head);
    throw new Error(`${where}: file must start with the magic "${MAGIC}", but got ${show(magic)}.`);
  }
  if (bytes.length < 12) {
    throw new Error(`${where}: file is truncated: it must hold the 12-byte header (the magic "${MAGIC}" and the uint32 manifest length), but has ${bytes.length} bytes.`);
  }
  const n = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(8, true);
  if (n > MAX_MANIFEST_BYTES || 12 + n > bytes.length) fail(RangeError, where, 'manifest length', `must be at most ${Math.min(MAX_MANIFEST_BYTES, bytes.length - 12)} bytes`, n);
  const notJson = (error: unknown) => new Error(`${where}: manifest must be UTF-8 JSON, but parsing failed (${(error as Error).message}).`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(12, 12 + n));
  } catch (error) {
    throw notJson(error);
  }
  checkJsonText(text, where, 'manifest');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw notJson(error);
  }
  const manifest = checkManifest(where, parsed);
  const dataStart = 12 + n + ((4 - (n % 4)) % 4);
  const sizes = manifest.weights.map((w) => w.shape.reduce((a, b) => a * b, 1));
  const expected = dataStart + 4 * sizes.reduce((a, b) => a + b, 0);
  if (bytes.length !== expected) fail(RangeError, where, 'file size', `must be ${expected} bytes (manifest + float32 weights)`, bytes.length);
  const copy = new Uint8Array(bytes.subarray(dataStart)); // a fresh, aligned buffer (a Node Buffer's slice would be a view into its pool)
  const floats = new Float32Array(copy.buffer, 0, copy.byteLength / 4);
  const values = new Map<string, Float32Array>();
  let at = 0;
  manifest.weights.forEach((w, i) => {
    const v = floats.subarray(at, (at += sizes[i]!));
    const bad = v.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) fail(RangeError, where, `weight ${w.name}[${bad}]`, 'must be a finite float32', v[bad]);
    values.set(w.name, v);
  });
  return { manifest, values };
}

/**
 * Writes trained draft heads into `model`'s offsets 1…k−1, after checking that the model's head
 * has the same number of offsets, kind, sizes and activation, and that its base weights have the
 * fingerprint the heads were trained on; a file with a draft vocabulary sets the head's (the head
 * must not be prepared for a decode then). Everything (an already parsed {@link DraftHeads}
 * included: its manifest, every weight's length and finiteness) is checked before anything is
 * written, and a failed attach leaves the head as it was. Offset 0 and the trunk are never touched.
 *
 * @example
 * ```ts
 * const { model } = await loadLlama2c(checkpointUrl, { mtpHeads: 4, headKind: 'mlp', headHiddenSize: 256 });
 * await attachDraftHeads(model, headsUrl); // or pass draftHeads: headsUrl to loadLlama2c
 * ```
 * @param model The base model with a matching `MultiTokenHead` (built).
 * @param heads The draft-heads file: bytes, a URL, or an already parsed {@link DraftHeads}.
 * @returns The manifest of the attached heads.
 */
export async function attachDraftHeads(model: LayersModel, heads: BytesSource | DraftHeads): Promise<DraftHeadsManifest> {
  const fn = 'attachDraftHeads';
  headOf(fn, model);
  if (heads !== null && typeof heads === 'object' && 'manifest' in heads && 'values' in heads) {
    const where = `${fn}: heads`;
    return attachParsedDraftHeads(model, { manifest: checkManifest(where, heads.manifest), values: heads.values }, fn, 'heads');
  }
  const file = await readBytes(heads as BytesSource, fn, 'heads');
  return attachParsedDraftHeads(model, readDraftHeads(file.bytes, file.where), fn, 'heads');
}

/**
 * {@link attachDraftHeads} of parsed heads whose manifest is checked, with errors naming `fn`
 * and the argument `arg` the heads came from (e.g. `loadLlama2c: options.draftHeads`). Every
 * check (the head's fields, each weight's length and finiteness, the base fingerprint) comes
 * before the first write, and the writes are all or nothing: a write that throws restores the
 * weights and the draft vocabulary it had changed.
 * @internal shared with `loadLlama2c`
 */
export async function attachParsedDraftHeads(model: LayersModel, parsed: DraftHeads, fn: string, arg: string): Promise<DraftHeadsManifest> {
  const head = headOf(fn, model);
  const m = parsed.manifest;
  const where = `${fn}: ${arg}`;
  const [vocabSize, hiddenSize] = head.unembedding.matrix().shape as [number, number];
  const mismatch = (field: string, want: unknown, got: unknown): never => {
    throw new RangeError(`${where} ${field} must match the model's (${show(want)}), but got ${show(got)}.`);
  };
  if (m.numHeads !== head.numHeads) mismatch('numHeads', head.numHeads, m.numHeads);
  if (m.base.hiddenSize !== hiddenSize) mismatch('base.hiddenSize', hiddenSize, m.base.hiddenSize);
  if (m.base.vocabSize !== vocabSize) mismatch('base.vocabSize', vocabSize, m.base.vocabSize);
  const own = headFields(fn, head);
  if (own.kind !== m.kind) mismatch('kind', own.kind, m.kind);
  if (own.headHiddenSize !== m.headHiddenSize) mismatch('headHiddenSize', own.headHiddenSize, m.headHiddenSize);
  if (own.rank !== m.rank) mismatch('rank', own.rank, m.rank);
  if (own.activation !== m.activation) mismatch('activation', own.activation, m.activation);
  const vocab = m.draftVocab === undefined ? null : checkDraftVocab(fn, `${arg} draftVocab`, m.draftVocab, vocabSize);
  const writes = head.draftWeights().map((w) => {
    const values = parsed.values instanceof Map ? parsed.values.get(w.name) : undefined;
    const size = w.shape.reduce((a, b) => a * b, 1);
    if (!(values instanceof Float32Array) || values.length !== size) fail(RangeError, fn, `${arg} weight ${w.name}`, `must be a Float32Array of ${size} values`, values);
    const bad = values.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) fail(RangeError, fn, `${arg} weight ${w.name}[${bad}]`, 'must be a finite float32', values[bad]);
    return { ...w, values };
  });
  const fingerprint = await baseFingerprint(model);
  if (fingerprint !== m.base.fingerprint) {
    throw new Error(`${where} were trained on another base model: base.fingerprint must be this model's ${fingerprint}, but got ${m.base.fingerprint}.`);
  }
  const oldVocab = head.draftVocab;
  if (vocab !== null) {
    try {
      head.setDraftVocab(vocab); // before any write: it refuses while the head is prepared for a decode
    } catch (error) {
      throw new Error(`${fn}: the heads' draftVocab cannot be set (${(error as Error).message})`);
    }
  }
  const values = writes.map((w) => tf.tensor(w.values, w.shape, 'float32'));
  const saved = writes.map((w) => tf.clone(w.variable.read())); // the old values, restored if a write throws
  let written = 0;
  try {
    for (; written < writes.length; written++) writes[written]!.variable.write(values[written]!);
  } catch (error) {
    for (let i = 0; i < written; i++) writes[i]!.variable.write(saved[i]!);
    if (vocab !== null) head.setDraftVocab(oldVocab);
    throw error;
  } finally {
    tf.dispose([...values, ...saved]);
  }
  return m;
}
