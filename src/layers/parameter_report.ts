/**
 * Parameter arithmetic of a multi-token head: one shared unembedding plus k lightweight offset
 * heads (`V·D + Σ_j lightweight_j`) against k separate vocabulary projections (`k·V·D`). The
 * weight shapes of each offset-head kind are written here once; the layer builds exactly these.
 *
 * Reference: Gloeckle et al., "Better & Faster Large Language Models via Multi-token
 * Prediction" (2024), §2 (memory-efficient shared unembedding).
 */
import { checkPositiveInteger, checkWeightSize, SIZE_LIMITS } from '../internal/errors.js';
import { checkKind, type HeadSizes, LAYER_DEFAULTS, type OffsetHeadKind, resolveHeadSizes, resolveUseBias } from './args.js';
import type { MultiTokenHeadArgs } from './multi_token_head.js';

const WHERE = 'parameterReport';

/** Shared vs separate parameter counts of a k-offset head. @inline */
export interface ParameterReport {
  /** Vocabulary size V. */
  vocabSize: number;
  /** Hidden size D. */
  hiddenSize: number;
  /** Number of offsets k. */
  numHeads: number;
  /** Parameters of the one shared unembedding: `V·D` (+ `V` bias), counted once even when tied to an embedding. */
  unembedding: number;
  /** Parameters of each offset's lightweight head, offsets 0…k-1. */
  offsetHeads: number[];
  /** This design: `unembedding + Σ offsetHeads`. */
  shared: number;
  /** k separate vocabulary projections: `k·V·D` (+ `k·V` bias). */
  separate: number;
  /** `separate − shared`. */
  saved: number;
  /** `separate / shared`. */
  ratio: number;
}

/** Arguments of {@link parameterReport}: a head's arguments (same meaning, defaults and bounds) and its input size. @inline */
export interface ParameterReportArgs extends Pick<MultiTokenHeadArgs, 'vocabSize' | 'numHeads' | 'headKind' | 'offset0Kind' | 'rank' | 'headHiddenSize' | 'mlpHiddenSize' | 'useBias'> {
  /** Integer in `[1, 65536]`. Hidden size D, the width of the states the head reads. */
  hiddenSize: number;
}

/** One weight of an offset head: its name, shape and initial value (chosen so the head starts as the identity). */
export interface OffsetHeadWeight {
  /** Weight name within the head. */
  name: string;
  /** Shape. */
  shape: [number] | [number, number];
  /** Initial value: `identity`, `zeros`, or `random` (glorot uniform, for the first factor of a product whose second factor is zero). */
  init: 'identity' | 'zeros' | 'random';
}

/** The weights of one offset head of `kind` at hidden size `d` (none for `identity`). */
export function offsetHeadWeights(kind: OffsetHeadKind, d: number, sizes: HeadSizes): OffsetHeadWeight[] {
  switch (kind) {
    case 'identity':
      return [];
    case 'linear':
      return [{ name: 'kernel', shape: [d, d], init: 'identity' }, { name: 'bias', shape: [d], init: 'zeros' }];
    case 'residual':
      return [{ name: 'kernel', shape: [d, d], init: 'zeros' }, { name: 'bias', shape: [d], init: 'zeros' }];
    case 'lowRank': // A random, B zero (LoRA): starts as the identity and both factors get gradients
      return [{ name: 'down', shape: [d, sizes.rank!], init: 'random' }, { name: 'up', shape: [sizes.rank!, d], init: 'zeros' }];
    case 'mlp': // W1 random, W2 and b2 zero: starts as the identity and both layers get gradients
      return [
        { name: 'w1', shape: [d, sizes.headHiddenSize!], init: 'random' },
        { name: 'b1', shape: [sizes.headHiddenSize!], init: 'zeros' },
        { name: 'w2', shape: [sizes.headHiddenSize!, d], init: 'zeros' },
        { name: 'b2', shape: [d], init: 'zeros' },
      ];
  }
}

/**
 * Checks an offset head of `kind` can be built at hidden size `d`: `d` within
 * `SIZE_LIMITS.hiddenSize`, `rank ≤ d`, every weight within `SIZE_LIMITS.matrixElements`.
 * Allocates nothing, so a parent layer runs it for every head before building any.
 */
export function checkOffsetHead(where: string, kind: OffsetHeadKind, d: number, sizes: HeadSizes): void {
  checkPositiveInteger(where, 'the input hidden size', d, SIZE_LIMITS.hiddenSize);
  if (kind === 'lowRank' && sizes.rank! > d) {
    throw new RangeError(`${where}: rank must be at most the hidden size ${d}, but got ${sizes.rank}.`);
  }
  for (const w of offsetHeadWeights(kind, d, sizes)) checkWeightSize(where, w.name, w.shape);
}

/** Parameters of one offset head of `kind` at hidden size `d`. */
export function offsetHeadParams(kind: OffsetHeadKind, d: number, sizes: HeadSizes): number {
  return offsetHeadWeights(kind, d, sizes).reduce((sum, w) => sum + w.shape.reduce((a, b) => a * b, 1), 0);
}

/** Resolves the kinds of offsets 0…k-1 from `offset0Kind` and `headKind` (k already bounded), validating both. */
export function resolveHeadKinds(where: string, numHeads: number, headKind: unknown, offset0Kind: unknown): OffsetHeadKind[] {
  const first = checkKind(where, 'offset0Kind', offset0Kind ?? LAYER_DEFAULTS.offset0Kind);
  const rest = headKind ?? LAYER_DEFAULTS.headKind;
  if (Array.isArray(rest)) {
    if (rest.length !== numHeads - 1) {
      throw new RangeError(`${where}: headKind as an array must have length numHeads - 1 = ${numHeads - 1}, but got length ${rest.length}.`);
    }
    return [first, ...rest.map((k, i) => checkKind(where, `headKind[${i}]`, k))];
  }
  const kind = checkKind(where, 'headKind', rest);
  return [first, ...Array.from({ length: numHeads - 1 }, () => kind)];
}

/** Assembles a report from the per-part counts. */
export function makeReport(v: number, d: number, unembedding: number, offsetHeads: number[], useBias: boolean): ParameterReport {
  const k = offsetHeads.length;
  const shared = unembedding + offsetHeads.reduce((a, b) => a + b, 0);
  const separate = k * v * d + (useBias ? k * v : 0);
  return { vocabSize: v, hiddenSize: d, numHeads: k, unembedding, offsetHeads, shared, separate, saved: separate - shared, ratio: separate / shared };
}

/**
 * Counts the parameters of a multi-token head with a shared unembedding against k separate
 * vocabulary projections. Every size is checked against its bound first (k ≤ 64, V ≤ 2²⁰, D and
 * the widths ≤ 2¹⁶, any one weight ≤ 2³¹ elements; the error states it).
 *
 * @example
 * const r = parameterReport({ vocabSize: 32000, hiddenSize: 512, numHeads: 4 });
 * r.separate; // 4·32000·512 = 65,536,000
 * r.shared;   // 32000·512 + 3·(512·512 + 512) = 17,171,968
 */
export function parameterReport(args: ParameterReportArgs): ParameterReport {
  const v = checkPositiveInteger(WHERE, 'vocabSize', args.vocabSize, SIZE_LIMITS.vocabSize);
  const d = checkPositiveInteger(WHERE, 'hiddenSize', args.hiddenSize, SIZE_LIMITS.hiddenSize);
  const k = checkPositiveInteger(WHERE, 'numHeads', args.numHeads, SIZE_LIMITS.numHeads);
  const useBias = resolveUseBias(WHERE, args.useBias);
  const kinds = resolveHeadKinds(WHERE, k, args.headKind, args.offset0Kind);
  const sizes = resolveHeadSizes(WHERE, kinds, args);
  if (sizes.rank !== undefined && sizes.rank > d) throw new RangeError(`${WHERE}: rank must be at most hiddenSize ${d}, but got ${sizes.rank}.`);
  return makeReport(v, d, v * d + (useBias ? v : 0), kinds.map((kind) => offsetHeadParams(kind, d, sizes)), useBias);
}

/** `1234567` → `'1,234,567'`. */
function n(x: number): string {
  return x.toLocaleString('en-US');
}

/**
 * Formats a `parameterReport` result as a small markdown table with the arithmetic spelled out.
 *
 * @example
 * console.log(formatParameterReport(parameterReport({ vocabSize: 256, hiddenSize: 64, numHeads: 4 })));
 */
export function formatParameterReport(r: ParameterReport): string {
  const { vocabSize: v, hiddenSize: d, numHeads: k } = r;
  const heads = r.offsetHeads.map(n).join(' + ');
  return [
    `| design | arithmetic | parameters |`,
    `| --- | --- | --- |`,
    `| ${k} separate unembeddings | ${k}·${n(v)}·${n(d)}${r.separate !== k * v * d ? ` + ${k}·${n(v)}` : ''} | ${n(r.separate)} |`,
    `| shared unembedding + offset heads | ${n(r.unembedding)} + (${heads}) | ${n(r.shared)} |`,
    `| saved | ${n(r.separate)} − ${n(r.shared)} | ${n(r.saved)} (${r.saved >= 0 ? `${r.ratio.toFixed(2)}× fewer` : `${(1 / r.ratio).toFixed(2)}× more`}) |`,
  ].join('\n');
}
