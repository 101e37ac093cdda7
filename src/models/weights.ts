/**
 * The trunk's weights, declared once: one table gives every weight's canonical name (those of
 * llama2.c / Meta's Llama checkpoints), role, shape (`[in, out]` for matrices: y = x·W) and
 * initializer. The trunk layer builds its variables from it, `transformerFromWeights` checks a
 * checkpoint against it, and the checkpoint loaders map their files' names onto its roles —
 * {@link CANONICAL_NAMES} is the only place a weight name is spelled.
 *
 * Initialization follows nanoGPT's `_init_weights`: normal(0, 0.02) for matrices and embeddings,
 * normal(0, 0.02/√(2·layers)) for the two projections that write into the residual stream,
 * norms at scale 1 and shift 0, biases 0.
 */
import type { ResolvedTransformerConfig } from './config.js';

/** The architecture fields of the config: what the trunk's weights and math depend on. */
export type ArchConfig = Pick<
  ResolvedTransformerConfig,
  | 'vocabSize' | 'maxLength' | 'hiddenSize' | 'numLayers' | 'numHeads' | 'numKeyValueHeads' | 'headDim' | 'mlpHiddenSize'
  | 'norm' | 'normEpsilon' | 'positions' | 'ropeTheta' | 'ropeLayout' | 'ropeScaling' | 'mlp' | 'useBias' | 'attentionBias' | 'mlpBias' | 'seed'
>;

const ARCH_KEYS = [
  'vocabSize', 'maxLength', 'hiddenSize', 'numLayers', 'numHeads', 'numKeyValueHeads', 'headDim', 'mlpHiddenSize',
  'norm', 'normEpsilon', 'positions', 'ropeTheta', 'ropeLayout', 'ropeScaling', 'mlp', 'useBias', 'attentionBias', 'mlpBias', 'seed',
] as const satisfies readonly (keyof ArchConfig)[];

/** The architecture fields of `c` (anything else left out). */
export function archOf(c: Partial<Record<keyof ArchConfig, unknown>>): Partial<ArchConfig> {
  const arch: Record<string, unknown> = {};
  for (const key of ARCH_KEYS) if (c[key] !== undefined) arch[key] = c[key];
  return arch as Partial<ArchConfig>;
}

/** The weights of one block, by role (the fields of `ops.ts`' `BlockWeights`). */
export type BlockPart = 'attentionNorm' | 'wq' | 'wk' | 'wv' | 'wo' | 'ffnNorm' | 'w1' | 'w2' | 'w3';
/** The weights outside the blocks: token and position embeddings, the final norm, the untied output matrix. */
export type TopPart = 'embedding' | 'positions' | 'norm' | 'output';
/** Every role a weight can have. */
export type WeightPart = BlockPart | TopPart;
/** A role's tensors: the scale or matrix, and the shift or bias. */
export type WeightKind = 'weight' | 'bias';

/** The canonical name of every role (a block's are under `layers.<i>.`), suffixed `.weight` or `.bias`. */
export const CANONICAL_NAMES: Readonly<Record<WeightPart, string>> = {
  embedding: 'tok_embeddings',
  positions: 'pos_embeddings',
  attentionNorm: 'attention_norm',
  wq: 'attention.wq',
  wk: 'attention.wk',
  wv: 'attention.wv',
  wo: 'attention.wo',
  ffnNorm: 'ffn_norm',
  w1: 'feed_forward.w1', // swiglu: the gate
  w2: 'feed_forward.w2', // the projection back to the residual stream
  w3: 'feed_forward.w3', // swiglu: the up projection
  norm: 'norm',
  output: 'output',
};

/** Canonical name of a role's tensor: `layer` null for the top-level weights (e.g. `weightName('wq', 0)` = `layers.0.attention.wq.weight`). */
export function weightName(part: WeightPart, layer: number | null, kind: WeightKind = 'weight'): string {
  return `${layer === null ? '' : `layers.${layer}.`}${CANONICAL_NAMES[part]}.${kind}`;
}

/** Whether role `part` of `c` has a bias (norms: layerNorm's shift). */
export function hasBias(c: Pick<ArchConfig, 'norm' | 'attentionBias' | 'mlpBias'>, part: WeightPart): boolean {
  switch (part) {
    case 'attentionNorm': case 'ffnNorm': case 'norm': return c.norm === 'layerNorm';
    case 'wq': case 'wk': case 'wv': return c.attentionBias !== 'none';
    case 'wo': return c.attentionBias === 'qkvo';
    case 'w1': case 'w2': case 'w3': return c.mlpBias;
    default: return false;
  }
}

/** How a weight starts. */
export type WeightInit = { kind: 'ones' } | { kind: 'zeros' } | { kind: 'normal'; stddev: number; seed: number };

/** One weight: canonical name, role, shape, initializer. */
export interface WeightSpec {
  /** Canonical name ({@link weightName}). */
  name: string;
  /** The role. */
  part: WeightPart;
  /** Block index, or null outside the blocks. */
  layer: number | null;
  /** Matrix/scale or bias/shift. */
  kind: WeightKind;
  /** Shape; `[in, out]` for a projection matrix. */
  shape: number[];
  /** Initial values when no checkpoint gives them. */
  init: WeightInit;
}

/** Every trunk weight of `c`, in build order (the token embedding first: the tied head reads the trunk's first weight). */
export function trunkWeightSpecs(c: ArchConfig): WeightSpec[] {
  const D = c.hiddenSize;
  const hs = c.headDim;
  const F = c.mlpHiddenSize;
  const specs: WeightSpec[] = [];
  const ones = { kind: 'ones' } as const;
  const zeros = { kind: 'zeros' } as const;
  const normal = (stddev: number): WeightInit => ({ kind: 'normal', stddev, seed: c.seed + specs.length });
  const residual = 0.02 / Math.sqrt(2 * c.numLayers); // GPT-2: keep the residual stream's scale with depth
  const add = (part: WeightPart, layer: number | null, kind: WeightKind, shape: number[], init: WeightInit) =>
    specs.push({ name: weightName(part, layer, kind), part, layer, kind, shape, init });
  const addNorm = (part: WeightPart, layer: number | null) => {
    add(part, layer, 'weight', [D], ones);
    if (hasBias(c, part)) add(part, layer, 'bias', [D], zeros);
  };
  const addLinear = (part: BlockPart, layer: number, shape: [number, number], stddev: number) => {
    add(part, layer, 'weight', shape, normal(stddev));
    if (hasBias(c, part)) add(part, layer, 'bias', [shape[1]], zeros);
  };

  add('embedding', null, 'weight', [c.vocabSize, D], normal(0.02));
  if (c.positions === 'learned') add('positions', null, 'weight', [c.maxLength, D], normal(0.02));
  for (let i = 0; i < c.numLayers; i++) {
    addNorm('attentionNorm', i);
    addLinear('wq', i, [D, c.numHeads * hs], 0.02);
    addLinear('wk', i, [D, c.numKeyValueHeads * hs], 0.02);
    addLinear('wv', i, [D, c.numKeyValueHeads * hs], 0.02);
    addLinear('wo', i, [c.numHeads * hs, D], residual);
    addNorm('ffnNorm', i);
    addLinear('w1', i, [D, F], 0.02);
    addLinear('w2', i, [F, D], residual);
    if (c.mlp === 'swiglu') addLinear('w3', i, [D, F], 0.02);
  }
  addNorm('norm', null);
  return specs;
}

/** The untied output matrix `[D, V]` (`[in, out]`; the head's `SharedUnembedding` holds it `[V, D]`), which lives outside the trunk. */
export function outputWeightSpec(c: Pick<ArchConfig, 'hiddenSize' | 'vocabSize'>): WeightSpec {
  return { name: weightName('output', null), part: 'output', layer: null, kind: 'weight', shape: [c.hiddenSize, c.vocabSize], init: { kind: 'zeros' } };
}

/** Every weight a checkpoint of `c` holds: the trunk's, then the output matrix unless the embedding is tied. */
export function checkpointWeightSpecs(c: ArchConfig & { tiedEmbeddings: boolean }): WeightSpec[] {
  const specs = trunkWeightSpecs(c);
  if (!c.tiedEmbeddings) specs.push(outputWeightSpec(c));
  return specs;
}
