/**
 * Draft heads as a small file of their own, separate from the base model: `exportDraftHeads`
 * writes the trained offsets 1…k−1 of a model's `MultiTokenHead`, `attachDraftHeads` writes them
 * back into a model of the same base (checked by a fingerprint of the base weights), and
 * `readDraftHeads` parses and checks a file without a model (what `loadLlama2c` uses to build
 * the right head before attaching).
 *
 * Format (little-endian): the 8 ASCII bytes `MTPHEADS`, a uint32 byte length n, n bytes of
 * UTF-8 JSON (the {@link DraftHeadsManifest}), zero padding to a multiple of 4, then the float32
 * values of every weight in manifest order, row-major.
 *
 * Reference: Cai et al., "Medusa" (2024), §2.3 (heads trained on a frozen base ship apart from it).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { checkInteger, checkPositiveInteger, fail, show, SIZE_LIMITS } from '../internal/errors.js';
import { OFFSET_HEAD_KINDS, type OffsetHeadKind } from '../layers/args.js';
import type { MultiTokenHead } from '../layers/index.js';
import { headSizes } from '../layers/offset_head.js';
import { offsetHeadWeights } from '../layers/parameter_report.js';
import { type BytesSource, readBytes } from './llama2c.js';

/** The file's first 8 bytes. */
const MAGIC = 'MTPHEADS';
/** Value of `manifest.format`. */
export const DRAFT_HEADS_FORMAT = 'tfjs-mtp-draft-heads';
/** The manifest version this reader writes and reads. */
const VERSION = 1;
/** Largest manifest accepted (bytes): far above any real one (a few hundred bytes per offset). */
const MAX_MANIFEST_BYTES = 1 << 20;

/** The JSON part of a draft-heads file. */
export interface DraftHeadsManifest {
  /** Always {@link DRAFT_HEADS_FORMAT}. */
  format: typeof DRAFT_HEADS_FORMAT;
  /** Format version (1). */
  version: number;
  /** Number of offsets k of the head they belong to (offset 0 is the base model's and is not stored). */
  numHeads: number;
  /** Kind of offsets 1…k−1. */
  kind: OffsetHeadKind;
  /** Width of `mlp` heads (absent for other kinds). */
  mlpHiddenSize?: number;
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
    /** {@link baseFingerprint} of the base model's weights. */
    fingerprint: string;
  };
  /** Every stored weight, in file order: `offset<j>/<name>` and its shape. */
  weights: Array<{ name: string; shape: number[] }>;
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

function headOf(fn: string, model: LayersModel): MultiTokenHead {
  if (model === null || typeof model !== 'object' || !Array.isArray((model as { layers?: unknown }).layers)) {
    fail(TypeError, fn, 'model', 'must be a tf.LayersModel with a MultiTokenHead', model);
  }
  const head = model.layers.find((l) => l.getClassName() === 'MultiTokenHead');
  if (head === undefined) {
    throw new TypeError(`${fn}: model must have a MultiTokenHead layer, but model '${model.name}' has layers [${model.layers.map((l) => l.getClassName()).join(', ')}].`);
  }
  return head as unknown as MultiTokenHead;
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
  const drafts = new Set(head.offsetHeads.slice(1).flatMap((h) => h.weights.map((w) => w.id)));
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

/** The draft offsets' weights of `head` in file order: `offset<j>/<name>` and the variable. */
function draftWeights(head: MultiTokenHead): Array<{ name: string; shape: number[]; variable: MultiTokenHead['offsetHeads'][number]['weights'][number] }> {
  return head.offsetHeads.slice(1).flatMap((h, i) => {
    const specs = offsetHeadWeights(h.kind, head.unembedding.matrix().shape[1]!, headSizes(h));
    return specs.map((spec, n) => ({ name: `offset${i + 1}/${spec.name}`, shape: spec.shape, variable: h.weights[n]! }));
  });
}

/**
 * Writes offsets 1…k−1 of `model`'s head (one kind for all of them) as a draft-heads file.
 * @param model A built model whose draft offsets were trained (its base is fingerprinted).
 * @param training Optional facts about training to store in the manifest (JSON values).
 * @returns The file's bytes.
 */
export async function exportDraftHeads(model: LayersModel, training?: Record<string, unknown>): Promise<Uint8Array> {
  const fn = 'exportDraftHeads';
  const head = headOf(fn, model);
  if (!head.built) throw new Error(`${fn}: model's MultiTokenHead must be built, but it is not.`);
  if (head.numHeads < 2) fail(RangeError, fn, 'model', 'must have at least 2 heads (offset 0 is the base model’s)', head.numHeads);
  const kinds = new Set(head.headKinds.slice(1));
  if (kinds.size !== 1) fail(RangeError, fn, 'model', 'must have one kind for offsets 1…k−1', [...kinds]);
  const first = head.offsetHeads[1]!;
  const [vocabSize, hiddenSize] = head.unembedding.matrix().shape as [number, number];
  const weights = draftWeights(head);
  const manifest: DraftHeadsManifest = {
    format: DRAFT_HEADS_FORMAT,
    version: VERSION,
    numHeads: head.numHeads,
    kind: first.kind,
    ...(first.mlpHiddenSize !== null ? { mlpHiddenSize: first.mlpHiddenSize } : {}),
    ...(first.rank !== null ? { rank: first.rank } : {}),
    activation: String(first.activation),
    base: { hiddenSize, vocabSize, fingerprint: await baseFingerprint(model) },
    weights: weights.map(({ name, shape }) => ({ name, shape })),
    ...(training !== undefined ? { training } : {}),
  };
  const json = new TextEncoder().encode(JSON.stringify(manifest));
  const dataStart = 12 + json.length + ((4 - (json.length % 4)) % 4);
  const elements = weights.reduce((sum, w) => sum + w.shape.reduce((a, b) => a * b, 1), 0);
  const bytes = new Uint8Array(dataStart + 4 * elements);
  bytes.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(bytes.buffer).setUint32(8, json.length, true);
  bytes.set(json, 12);
  const floats = new Float32Array(bytes.buffer, dataStart, elements); // the platform is little-endian (tfjs requires it)
  let at = 0;
  for (const w of weights) {
    const values = (await w.variable.read().data()) as Float32Array;
    floats.set(values, at);
    at += values.length;
  }
  return bytes;
}

/** Checks a manifest field by field; errors name `where` and the field. */
function checkManifest(where: string, m: unknown): DraftHeadsManifest {
  if (m === null || typeof m !== 'object' || Array.isArray(m)) fail(TypeError, where, 'manifest', 'must be a JSON object', m);
  const o = m as Record<string, unknown>;
  if (o['format'] !== DRAFT_HEADS_FORMAT) fail(TypeError, where, 'manifest.format', `must be "${DRAFT_HEADS_FORMAT}"`, o['format']);
  if (o['version'] !== VERSION) fail(RangeError, where, 'manifest.version', `must be ${VERSION}`, o['version']);
  const numHeads = checkInteger(where, 'manifest.numHeads', o['numHeads'], 2, SIZE_LIMITS.numHeads);
  const kind = o['kind'];
  if (!OFFSET_HEAD_KINDS.includes(kind as OffsetHeadKind)) fail(TypeError, where, 'manifest.kind', `must be one of ${OFFSET_HEAD_KINDS.join(', ')}`, kind);
  const base = o['base'] as Record<string, unknown> | undefined;
  if (base === null || typeof base !== 'object') fail(TypeError, where, 'manifest.base', 'must be an object', base);
  const hiddenSize = checkPositiveInteger(where, 'manifest.base.hiddenSize', base['hiddenSize'], SIZE_LIMITS.hiddenSize);
  const vocabSize = checkPositiveInteger(where, 'manifest.base.vocabSize', base['vocabSize'], SIZE_LIMITS.vocabSize);
  if (typeof base['fingerprint'] !== 'string' || !/^[0-9a-f]{16}$/.test(base['fingerprint'])) {
    fail(TypeError, where, 'manifest.base.fingerprint', 'must be 16 lowercase hex digits', base['fingerprint']);
  }
  if (typeof o['activation'] !== 'string') fail(TypeError, where, 'manifest.activation', 'must be a string', o['activation']);
  const sizes = {
    ...(o['mlpHiddenSize'] !== undefined ? { mlpHiddenSize: checkPositiveInteger(where, 'manifest.mlpHiddenSize', o['mlpHiddenSize'], SIZE_LIMITS.hiddenSize) } : {}),
    ...(o['rank'] !== undefined ? { rank: checkPositiveInteger(where, 'manifest.rank', o['rank'], hiddenSize) } : {}),
  };
  if (kind === 'mlp' && sizes.mlpHiddenSize === undefined) fail(TypeError, where, 'manifest.mlpHiddenSize', "must be set for kind 'mlp'", undefined);
  if (kind === 'lowRank' && sizes.rank === undefined) fail(TypeError, where, 'manifest.rank', "must be set for kind 'lowRank'", undefined);
  // The weights must be exactly those of k−1 offsets of this kind, in order.
  const expected = Array.from({ length: numHeads - 1 }, (_, i) => offsetHeadWeights(kind as OffsetHeadKind, hiddenSize, { rank: sizes.rank, mlpHiddenSize: sizes.mlpHiddenSize }).map((s) => ({ name: `offset${i + 1}/${s.name}`, shape: s.shape }))).flat();
  const weights = o['weights'];
  if (!Array.isArray(weights) || weights.length !== expected.length) {
    fail(RangeError, where, 'manifest.weights', `must list the ${expected.length} weights of ${numHeads - 1} '${String(kind)}' offsets`, weights);
  }
  expected.forEach((e, i) => {
    const w = weights[i] as { name?: unknown; shape?: unknown } | null;
    const same = w !== null && typeof w === 'object' && w.name === e.name && Array.isArray(w.shape) && w.shape.length === e.shape.length && w.shape.every((d, n) => d === e.shape[n]);
    if (!same) fail(RangeError, where, `manifest.weights[${i}]`, `must be { name: "${e.name}", shape: [${e.shape.join(', ')}] }`, JSON.stringify(w));
  });
  return {
    format: DRAFT_HEADS_FORMAT,
    version: VERSION,
    numHeads,
    kind: kind as OffsetHeadKind,
    ...sizes,
    activation: o['activation'] as string,
    base: { hiddenSize, vocabSize, fingerprint: base['fingerprint'] as string },
    weights: expected,
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
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (bytes.length < 12 || magic !== MAGIC) throw new Error(`${where}: file must start with the magic "${MAGIC}", but got ${show(magic)}.`);
  const n = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(8, true);
  if (n > MAX_MANIFEST_BYTES || 12 + n > bytes.length) fail(RangeError, where, 'manifest length', `must be at most ${Math.min(MAX_MANIFEST_BYTES, bytes.length - 12)} bytes`, n);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(12, 12 + n)));
  } catch (error) {
    throw new Error(`${where}: manifest must be UTF-8 JSON, but parsing failed (${(error as Error).message}).`);
  }
  const manifest = checkManifest(where, parsed);
  const dataStart = 12 + n + ((4 - (n % 4)) % 4);
  const sizes = manifest.weights.map((w) => w.shape.reduce((a, b) => a * b, 1));
  const expected = dataStart + 4 * sizes.reduce((a, b) => a + b, 0);
  if (bytes.length !== expected) fail(RangeError, where, 'file size', `must be ${expected} bytes (manifest + float32 weights)`, bytes.length);
  const copy = bytes.slice(dataStart); // aligned, owned
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
 * fingerprint the heads were trained on. Offset 0 and the trunk are never touched.
 *
 * @example
 * ```ts
 * const { model } = await loadLlama2c(checkpointUrl, { mtpHeads: 4, headKind: 'mlp', mlpHiddenSize: 256 });
 * await attachDraftHeads(model, headsUrl); // or pass draftHeads: headsUrl to loadLlama2c
 * ```
 * @param model The base model with a matching `MultiTokenHead` (built).
 * @param heads The draft-heads file: bytes, a URL, or an already parsed {@link DraftHeads}.
 * @returns The manifest of the attached heads.
 */
export async function attachDraftHeads(model: LayersModel, heads: BytesSource | DraftHeads): Promise<DraftHeadsManifest> {
  const fn = 'attachDraftHeads';
  const head = headOf(fn, model);
  let parsed: DraftHeads;
  if (heads !== null && typeof heads === 'object' && 'manifest' in heads && 'values' in heads) parsed = heads;
  else {
    const file = await readBytes(heads as BytesSource, fn, 'heads');
    parsed = readDraftHeads(file.bytes, file.where);
  }
  const m = parsed.manifest;
  const [vocabSize, hiddenSize] = head.unembedding.matrix().shape as [number, number];
  const first = head.offsetHeads[1];
  const mismatch = (field: string, want: unknown, got: unknown): never => {
    throw new RangeError(`${fn}: heads ${field} must match the model's (${show(want)}), but got ${show(got)}.`);
  };
  if (m.numHeads !== head.numHeads) mismatch('numHeads', head.numHeads, m.numHeads);
  if (m.base.hiddenSize !== hiddenSize) mismatch('base.hiddenSize', hiddenSize, m.base.hiddenSize);
  if (m.base.vocabSize !== vocabSize) mismatch('base.vocabSize', vocabSize, m.base.vocabSize);
  head.headKinds.slice(1).forEach((kind) => kind !== m.kind && mismatch('kind', kind, m.kind));
  if ((first!.mlpHiddenSize ?? undefined) !== m.mlpHiddenSize) mismatch('mlpHiddenSize', first!.mlpHiddenSize, m.mlpHiddenSize);
  if ((first!.rank ?? undefined) !== m.rank) mismatch('rank', first!.rank, m.rank);
  if (String(first!.activation) !== m.activation) mismatch('activation', String(first!.activation), m.activation);
  const fingerprint = await baseFingerprint(model);
  if (fingerprint !== m.base.fingerprint) {
    throw new Error(`${fn}: heads were trained on another base model: base.fingerprint must be this model's ${fingerprint}, but got ${m.base.fingerprint}.`);
  }
  for (const w of draftWeights(head)) {
    const value = tf.tensor(parsed.values.get(w.name)!, w.shape, 'float32');
    try {
      w.variable.write(value);
    } finally {
      value.dispose();
    }
  }
  return m;
}
