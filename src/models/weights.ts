/**
 * The trunk's weights, declared once: one table gives every weight's canonical name (those of
 * llama2.c / Meta's Llama checkpoints), shape (`[in, out]` for matrices: y = x·W) and
 * initializer. The trunk layer builds its variables from it, `transformerFromWeights` checks a
 * checkpoint against it, and nothing else spells a weight name.
 *
 * Initialization follows nanoGPT's `_init_weights`: normal(0, 0.02) for matrices and embeddings,
 * normal(0, 0.02/√(2·layers)) for the two projections that write into the residual stream,
 * norms at scale 1 and shift 0, biases 0.
 */
import type { ResolvedTransformerConfig } from './config.js';

/** The architecture fields of the config: what the trunk's weights and math depend on. */
export type ArchConfig = Pick<
  ResolvedTransformerConfig,
  | 'vocabSize' | 'maxLength' | 'hiddenSize' | 'numLayers' | 'numHeads' | 'numKeyValueHeads' | 'mlpHiddenSize'
  | 'norm' | 'normEpsilon' | 'positions' | 'ropeTheta' | 'ropeLayout' | 'mlp' | 'useBias' | 'seed'
>;

const ARCH_KEYS = [
  'vocabSize', 'maxLength', 'hiddenSize', 'numLayers', 'numHeads', 'numKeyValueHeads', 'mlpHiddenSize',
  'norm', 'normEpsilon', 'positions', 'ropeTheta', 'ropeLayout', 'mlp', 'useBias', 'seed',
] as const satisfies readonly (keyof ArchConfig)[];

/** The architecture fields of `c` (anything else left out). */
export function archOf(c: Partial<Record<keyof ArchConfig, unknown>>): Partial<ArchConfig> {
  const arch: Record<string, unknown> = {};
  for (const key of ARCH_KEYS) if (c[key] !== undefined) arch[key] = c[key];
  return arch as Partial<ArchConfig>;
}

/** How a weight starts. */
export type WeightInit = { kind: 'ones' } | { kind: 'zeros' } | { kind: 'normal'; stddev: number; seed: number };

/** One trunk weight: canonical name, shape, initializer. */
export interface WeightSpec {
  name: string;
  shape: number[];
  init: WeightInit;
}

/** Canonical name of block `i`'s weight `suffix` (e.g. `attention.wq.weight`). */
export const blockWeightName = (i: number, suffix: string): string => `layers.${i}.${suffix}`;

/** Every trunk weight of `c`, in build order (the token embedding first: the tied head reads the trunk's first weight). */
export function trunkWeightSpecs(c: ArchConfig): WeightSpec[] {
  const D = c.hiddenSize;
  const hs = D / c.numHeads;
  const F = c.mlpHiddenSize;
  const specs: WeightSpec[] = [];
  const ones = { kind: 'ones' } as const;
  const zeros = { kind: 'zeros' } as const;
  const normal = (stddev: number): WeightInit => ({ kind: 'normal', stddev, seed: c.seed + specs.length });
  const residual = 0.02 / Math.sqrt(2 * c.numLayers); // GPT-2: keep the residual stream's scale with depth
  const add = (name: string, shape: number[], init: WeightInit) => specs.push({ name, shape, init });
  const addNorm = (prefix: string) => {
    add(`${prefix}.weight`, [D], ones);
    if (c.norm === 'layerNorm') add(`${prefix}.bias`, [D], zeros);
  };
  const addLinear = (prefix: string, shape: [number, number], stddev: number) => {
    add(`${prefix}.weight`, shape, normal(stddev));
    if (c.useBias) add(`${prefix}.bias`, [shape[1]], zeros);
  };

  add('tok_embeddings.weight', [c.vocabSize, D], normal(0.02));
  if (c.positions === 'learned') add('pos_embeddings.weight', [c.maxLength, D], normal(0.02));
  for (let i = 0; i < c.numLayers; i++) {
    const b = (suffix: string) => blockWeightName(i, suffix);
    addNorm(b('attention_norm'));
    addLinear(b('attention.wq'), [D, c.numHeads * hs], 0.02);
    addLinear(b('attention.wk'), [D, c.numKeyValueHeads * hs], 0.02);
    addLinear(b('attention.wv'), [D, c.numKeyValueHeads * hs], 0.02);
    addLinear(b('attention.wo'), [c.numHeads * hs, D], residual);
    addNorm(b('ffn_norm'));
    addLinear(b('feed_forward.w1'), [D, F], 0.02);
    addLinear(b('feed_forward.w2'), [F, D], residual);
    if (c.mlp === 'swiglu') addLinear(b('feed_forward.w3'), [D, F], 0.02);
  }
  addNorm('norm');
  return specs;
}
