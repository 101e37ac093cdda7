/**
 * An independent float64 Llama forward pass for the exactness tests: plain loops over
 * Float64Arrays, no tfjs, one token at a time with a KV cache, step by step as llama2.c's
 * run.c `forward()` (RMSNorm, rotary positions, grouped-query attention, SwiGLU, classifier).
 *
 * It reads the canonical weights (`transformerFromWeights`' names, matrices `[in, out]`), so the
 * same function checks both loaders; `ropeLayout` says which dims rotate together. A bias is added
 * to a projection when the weights have one (`…wq.bias`: Qwen2's q/k/v biases, Llama's
 * `attention_bias` / `mlp_bias`); `headDim` may differ from hiddenSize / numAttentionHeads; `invFreq`
 * replaces the rotary inverse frequencies θ^(−2i/hs) (a scaled RoPE, computed by the test).
 */

/** The architecture fields the reference needs (a llama-family `TransformerConfig`). */
export interface ReferenceConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  /** Attention heads per block (`TransformerConfig.numAttentionHeads`). */
  numAttentionHeads: number;
  numKeyValueHeads: number;
  /** The MLP's width (`TransformerConfig.intermediateSize`). */
  intermediateSize: number;
  normEpsilon: number;
  ropeTheta: number;
  ropeLayout: 'interleaved' | 'halfSplit';
  tiedEmbeddings: boolean;
  /** Head width (default hiddenSize / numAttentionHeads). */
  headDim?: number;
  /** The hs/2 rotary inverse frequencies (default θ^(−2i/hs)). */
  invFreq?: readonly number[];
}

/** Canonical weights, as the loaders produce them. */
export type ReferenceWeights = Map<string, { shape: number[]; data: Float32Array }>;

/** x (length n) times W (`[n, m]`, row-major): y = x·W, accumulated in float64. */
function matvec(x: Float64Array, w: Float64Array, m: number): Float64Array {
  const y = new Float64Array(m);
  for (let i = 0; i < x.length; i++) {
    const xi = x[i]!;
    for (let j = 0; j < m; j++) y[j] += xi * w[i * m + j]!;
  }
  return y;
}

function rmsNorm(x: Float64Array, weight: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * scale * weight[i]!);
}

/** Rotates each head of `v` (`heads × hs`) in place by position `pos`. */
function rope(v: Float64Array, heads: number, hs: number, pos: number, theta: number, layout: 'interleaved' | 'halfSplit', invFreq?: readonly number[]): void {
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < hs / 2; i++) {
      const angle = pos * (invFreq ? invFreq[i]! : Math.pow(theta, (-2 * i) / hs));
      const [a, b] = layout === 'interleaved' ? [h * hs + 2 * i, h * hs + 2 * i + 1] : [h * hs + i, h * hs + i + hs / 2];
      const [x0, x1] = [v[a]!, v[b]!];
      v[a] = x0 * Math.cos(angle) - x1 * Math.sin(angle);
      v[b] = x0 * Math.sin(angle) + x1 * Math.cos(angle);
    }
  }
}

/** A float64 Llama with a KV cache: `step(token)` returns the next-token logits at the new position. */
export class ReferenceLlama {
  private readonly w = new Map<string, Float64Array>();
  private readonly keys: Float64Array[][] = [];
  private readonly values: Float64Array[][] = [];

  constructor(
    readonly config: ReferenceConfig,
    weights: ReferenceWeights,
  ) {
    for (const [name, t] of weights) this.w.set(name, Float64Array.from(t.data));
    for (let l = 0; l < config.numLayers; l++) {
      this.keys.push([]);
      this.values.push([]);
    }
  }

  /** x·W (+ b when the weights have `prefix.bias`) for the projection `prefix`. */
  private linear(x: Float64Array, prefix: string, m: number): Float64Array {
    const y = matvec(x, this.get(`${prefix}.weight`), m);
    const bias = this.w.get(`${prefix}.bias`);
    return bias ? y.map((v, i) => v + bias[i]!) : y;
  }

  private get(name: string): Float64Array {
    const w = this.w.get(name);
    if (w === undefined) throw new Error(`ReferenceLlama: no weight ${name}`);
    return w;
  }

  /** Number of positions seen. */
  get length(): number {
    return this.keys[0]!.length;
  }

  /** Feeds one token at the next position; returns its logits (float64, length V). */
  step(token: number): Float64Array {
    const c = this.config;
    const D = c.hiddenSize;
    const hs = c.headDim ?? D / c.numAttentionHeads;
    const kvMul = c.numAttentionHeads / c.numKeyValueHeads;
    const pos = this.length;
    // token embedding
    let x: Float64Array = this.get('tok_embeddings.weight').slice(token * D, (token + 1) * D);
    for (let l = 0; l < c.numLayers; l++) {
      const p = `layers.${l}.`;
      // attention rmsnorm, qkv matmuls for this position
      const xb = rmsNorm(x, this.get(`${p}attention_norm.weight`), c.normEpsilon);
      const q = this.linear(xb, `${p}attention.wq`, hs * c.numAttentionHeads);
      const k = this.linear(xb, `${p}attention.wk`, hs * c.numKeyValueHeads);
      const v = this.linear(xb, `${p}attention.wv`, hs * c.numKeyValueHeads);
      // rotary positions on q and k
      rope(q, c.numAttentionHeads, hs, pos, c.ropeTheta, c.ropeLayout, c.invFreq);
      rope(k, c.numKeyValueHeads, hs, pos, c.ropeTheta, c.ropeLayout, c.invFreq);
      this.keys[l]!.push(k);
      this.values[l]!.push(v);
      // multihead attention over positions 0…pos; query head h reads key/value head h / kvMul
      const att = new Float64Array(hs * c.numAttentionHeads);
      for (let h = 0; h < c.numAttentionHeads; h++) {
        const kvh = Math.floor(h / kvMul);
        const scores = this.keys[l]!.map((kt) => {
          let s = 0;
          for (let i = 0; i < hs; i++) s += q[h * hs + i]! * kt[kvh * hs + i]!;
          return s / Math.sqrt(hs);
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const sum = e.reduce((a, b) => a + b, 0);
        this.values[l]!.forEach((vt, t) => {
          for (let i = 0; i < hs; i++) att[h * hs + i] += (e[t]! / sum) * vt[kvh * hs + i]!;
        });
      }
      // output projection, residual
      const o = this.linear(att, `${p}attention.wo`, D);
      x = x.map((xi, i) => xi + o[i]!);
      // ffn rmsnorm, swiglu: w2(silu(w1 x) * w3 x), residual
      const xf = rmsNorm(x, this.get(`${p}ffn_norm.weight`), c.normEpsilon);
      const h1 = this.linear(xf, `${p}feed_forward.w1`, c.intermediateSize);
      const h3 = this.linear(xf, `${p}feed_forward.w3`, c.intermediateSize);
      const gated = h1.map((a, i) => (a / (1 + Math.exp(-a))) * h3[i]!);
      const f = this.linear(gated, `${p}feed_forward.w2`, D);
      x = x.map((xi, i) => xi + f[i]!);
    }
    // final rmsnorm, classifier into logits
    x = rmsNorm(x, this.get('norm.weight'), c.normEpsilon);
    if (!c.tiedEmbeddings) return matvec(x, this.get('output.weight'), c.vocabSize);
    const emb = this.get('tok_embeddings.weight');
    const logits = new Float64Array(c.vocabSize);
    for (let t = 0; t < c.vocabSize; t++) for (let i = 0; i < D; i++) logits[t] += x[i]! * emb[t * D + i]!;
    return logits;
  }
}

/** Index of the largest value (the first on ties, as run.c's argmax). */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** Teacher-forced logits of every position of `tokens` (`[n][V]`). */
export function referenceLogits(config: ReferenceConfig, weights: ReferenceWeights, tokens: readonly number[]): Float64Array[] {
  const model = new ReferenceLlama(config, weights);
  return tokens.map((t) => model.step(t));
}

/**
 * Greedy decoding as run.c with `steps` forwards (prompt included, one per position): the
 * returned ids are BOS plus `steps` more, i.e. `steps + 1 - prompt.length` generated tokens.
 */
export function referenceGreedy(config: ReferenceConfig, weights: ReferenceWeights, prompt: readonly number[], steps: number): number[] {
  const model = new ReferenceLlama(config, weights);
  const tokens = [...prompt];
  let logits: Float64Array = new Float64Array(0);
  for (const t of prompt) logits = model.step(t);
  while (tokens.length < steps + 1) {
    tokens.push(argmax(logits));
    if (tokens.length < steps + 1) logits = model.step(tokens[tokens.length - 1]!);
  }
  return tokens;
}
