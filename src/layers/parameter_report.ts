/**
 * Parameter arithmetic of a multi-token head: one shared unembedding plus k lightweight offset
 * heads (`V·D + Σ_j lightweight_j`) against k separate vocabulary projections (`k·V·D`).
 *
 * Reference: Gloeckle et al., "Better & Faster Large Language Models via Multi-token
 * Prediction" (2024), §2 (memory-efficient shared unembedding).
 */
import { checkPositiveInteger } from '../internal/errors.js';
import { checkKind, type OffsetHeadKind } from './args.js';

const WHERE = 'parameterReport';

/** Shared vs separate parameter counts of a k-offset head. */
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

/** Arguments of {@link parameterReport}: the same meaning as in {@link MultiTokenHeadArgs}. */
export interface ParameterReportArgs {
  /** Vocabulary size V. */
  vocabSize: number;
  /** Hidden size D. */
  hiddenSize: number;
  /** Number of offsets k. */
  numHeads: number;
  /** Kind of offsets 1…k-1 (one kind, or an array of length k-1). Default `'residual'`. */
  headKind?: OffsetHeadKind | OffsetHeadKind[];
  /** Kind of offset 0. Default `'identity'`. */
  offset0Kind?: OffsetHeadKind;
  /** Rank of `lowRank` heads. */
  rank?: number;
  /** Whether the unembedding has a bias. Default `false`. */
  useBias?: boolean;
}

/** Default kind of offsets 1…k-1: Medusa's zero-initialised ResBlock. */
export const DEFAULT_HEAD_KIND: OffsetHeadKind = 'residual';
/** Default kind of offset 0: the identity keeps next-token predictions exact. */
export const DEFAULT_OFFSET0_KIND: OffsetHeadKind = 'identity';

/** Resolves the kinds of offsets 0…k-1 from `offset0Kind` and `headKind`, validating both. */
export function resolveHeadKinds(
  where: string,
  numHeads: number,
  headKind: OffsetHeadKind | readonly OffsetHeadKind[] | undefined,
  offset0Kind: OffsetHeadKind | undefined,
): OffsetHeadKind[] {
  const first = checkKind(where, 'offset0Kind', offset0Kind ?? DEFAULT_OFFSET0_KIND);
  const rest = headKind ?? DEFAULT_HEAD_KIND;
  if (Array.isArray(rest)) {
    if (rest.length !== numHeads - 1) {
      throw new RangeError(`${where}: headKind as an array must have length numHeads - 1 = ${numHeads - 1}, but got length ${rest.length}.`);
    }
    return [first, ...rest.map((k, i) => checkKind(where, `headKind[${i}]`, k))];
  }
  const kind = checkKind(where, 'headKind', rest);
  return [first, ...Array.from({ length: numHeads - 1 }, () => kind)];
}

/** Parameters of one lightweight head of `kind` at hidden size `d` (rank `r` for `lowRank`). */
export function offsetHeadParams(kind: OffsetHeadKind, d: number, r: number | undefined): number {
  if (kind === 'identity') return 0;
  if (kind === 'lowRank') return 2 * d * r!;
  return d * d + d; // linear, residual: W [D, D] + b [D]
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
 * vocabulary projections.
 *
 * @example
 * const r = parameterReport({ vocabSize: 32000, hiddenSize: 512, numHeads: 4 });
 * r.separate; // 4·32000·512 = 65,536,000
 * r.shared;   // 32000·512 + 3·(512·512 + 512) = 17,171,968
 */
export function parameterReport(args: ParameterReportArgs): ParameterReport {
  const v = checkPositiveInteger(WHERE, 'vocabSize', args.vocabSize);
  const d = checkPositiveInteger(WHERE, 'hiddenSize', args.hiddenSize);
  const k = checkPositiveInteger(WHERE, 'numHeads', args.numHeads);
  const kinds = resolveHeadKinds(WHERE, k, args.headKind, args.offset0Kind);
  const r = kinds.includes('lowRank') ? checkPositiveInteger(WHERE, 'rank', args.rank) : undefined;
  if (r !== undefined && r > d) throw new RangeError(`${WHERE}: rank must be at most hiddenSize ${d}, but got ${r}.`);
  const useBias = args.useBias ?? false;
  return makeReport(v, d, v * d + (useBias ? v : 0), kinds.map((kind) => offsetHeadParams(kind, d, r)), useBias);
}

/** `1234567` → `'1,234,567'`. */
function n(x: number): string {
  return x.toLocaleString('en-US');
}

/**
 * Formats a {@link ParameterReport} as a small markdown table with the arithmetic spelled out.
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
    `| saved | ${n(r.separate)} − ${n(r.shared)} | ${n(r.saved)} (${r.ratio.toFixed(2)}× fewer) |`,
  ].join('\n');
}
