/**
 * `SequentialMtpHead`: multi-token prediction with sequential modules, the form of DeepSeek-V3's
 * and Qwen3-Next's MTP modules. Offset 0 is the model's own head (the shared unembedding on the
 * trunk state h, exact). Offset j ≥ 1 chains: module j reads offset j−1's state and the
 * embedding of the token at t + j,
 *
 *     s_0 = h,   s_j = M_j([rms(s_{j−1})·g_j ; rms(emb(x_{t+j}))·e_j]),   logits_j = s_j · Eᵀ
 *
 * with M_j(x) = u + W2·swish(u·W1 + b1) + b2, u = x·P (a projection then a residual MLP). In
 * training x_{t+j} is the true token; when decoding it is the token drafted by column j−1 (its
 * argmax), so drafting is a short chain argmax → embedding gather → next module, all on the
 * device. The embedding E is the trunk's token embedding, tied (the modules own no vocabulary
 * matrix). For tree drafting, `headTree` grows candidate trees the EAGLE-2 way (each candidate's
 * children from the next module fed that candidate's own token; Li et al. 2024, §4). At the
 * accepted tip, `draftArgmax` / `draftTopK` / `draftLogits` run modules 1…n only, the chain
 * starting from the token the verifier committed there (the root). With a draft vocabulary the
 * modules' inference logits are over its gathered rows of E (see draft_projection.ts).
 *
 * Reference: DeepSeek-AI, "DeepSeek-V3 Technical Report" (2024), §2.2 (MTP modules: RMSNorm of
 * the previous depth's state and of the next token's embedding, concatenated, projected, then a
 * block, then the shared output head); Qwen3-Next's MTP module of the same form.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initializers, type LayerVariable } from '@tensorflow/tfjs-layers';
import type { TopKCandidates, TreeCandidates } from '../decoding/model.js';
import { checkDraftVocab } from '../internal/draft_vocab.js';
import { checkInteger, checkPositiveInteger, fail, SIZE_LIMITS, checkWeightSize } from '../internal/errors.js';
import { registerOnce } from '../internal/registration.js';
import { deriveSeed } from '../internal/seed.js';
import { topk2d } from '../internal/topk.js';
import { lastDim, one, oneShape, type Shape } from '../internal/shape.js';
import { headHiddenSizeArg, type Layer, type LayerArgs, LayerBase } from './args.js';
import { breakRows, checkDraftCall, checkTopK, checkTrainingCall, UnembeddingProjection } from './draft_projection.js';
import type { DraftHeadSpec, DraftHeadWeight } from './draft_head.js';
import { checkedArgmax } from './inference_fused.js';
import { fusedCheckedArgmax, fusedDraftArgmax, fusedSequentialChain, fusedSequentialModule, fusedSequentialTree } from '../kernels/ops.js';
import { fusedKernelsAvailable } from '../kernels/registry.js';
import { setWeightNamePrefix, weightName } from './nesting.js';
import { resolveTie, SharedUnembedding } from './shared_unembedding.js';
import { isSymbolic } from './tying.js';

const WHERE = 'SequentialMtpHead';

/** RMSNorm epsilon of the modules' input norms. */
export const SEQUENTIAL_NORM_EPSILON = 1e-5;

/** Most children per node in `headTree` (the decoders' `TREE_LIMITS.topK`): a level holds k² candidates. */
const MAX_TREE_WIDTH = 64;

/** Arguments of {@link SequentialMtpHead}. */
export interface SequentialMtpHeadArgs extends LayerArgs {
  /** Integer in `[2, 64]`. Number of offsets k (offset 0 is the model's own head). */
  numHeads: number;
  /** Integer in `[1, 2²⁰]`. Vocabulary size V. */
  vocabSize: number;
  /** Integer in `[1, 65536]`. Width H of each module's MLP (required; `mlpHiddenSize`, its deprecated name, is accepted instead). */
  headHiddenSize?: number;
  /**
   * The old name of `headHiddenSize`. Given with it, the two must be equal.
   * @deprecated Use `headHiddenSize`; `mlpHiddenSize` is accepted until the next minor release.
   */
  mlpHiddenSize?: number;
  /** The token embedding the modules read and unembed with (the layer, e.g. the trunk, or its name). */
  tiedTo: Layer | string;
  /**
   * Distinct token ids in `[0, vocabSize)`, 1…vocabSize of them, any order (stored increasing).
   * The draft vocabulary: at inference modules 1…k−1 propose only these tokens (logits over the
   * gathered rows of the tied embedding). Offset 0 and the layer's `call` (`predict`) always use
   * the whole vocabulary. Default: none (the whole vocabulary).
   */
  draftVocab?: readonly number[] | null;
  /** Integer. Seed of the modules' random initial values (each module and weight its own stream): the same seed gives the same weights. Default: unseeded. */
  seed?: number;
}

/** One weight of a sequential module. */
export interface SequentialModuleWeight {
  /** Its name within the module (`norm_state`, `norm_token`, `proj`, `w1`, `b1`, `w2`, `b2`). */
  name: string;
  /** Its shape. */
  shape: number[];
  /** Its initial value: ones, zeros, Glorot-uniform random, or `[I; small random]` for the projection. */
  init: 'ones' | 'zeros' | 'random' | 'projection';
}

/** The weights of one module at hidden size `d` and MLP width `h`, in creation (and file) order. */
export function sequentialModuleWeights(d: number, h: number): SequentialModuleWeight[] {
  return [
    { name: 'norm_state', shape: [d], init: 'ones' },
    { name: 'norm_token', shape: [d], init: 'ones' },
    { name: 'proj', shape: [2 * d, d], init: 'projection' },
    { name: 'w1', shape: [d, h], init: 'random' },
    { name: 'b1', shape: [h], init: 'zeros' },
    { name: 'w2', shape: [h, d], init: 'zeros' },
    { name: 'b2', shape: [d], init: 'zeros' },
  ];
}

/** `[I; 0]` plus a small random token part: a fresh module passes the normalized state through. */
function projectionInit(d: number, seed: number | null): tf.Tensor2D {
  return tf.tidy(() => tf.concat([tf.eye(d), tf.mul(tf.randomNormal([d, d], 0, 1, 'float32', seed ?? undefined), 0.02)], 0) as tf.Tensor2D); // [2D, D]
}

/**
 * Sequential MTP modules over the shared (tied) unembedding. It has the members
 * `CachedTransformer` drives on its head (`headArgmax`, `logits`, `prepare`, `release`, the tip
 * passes `draftArgmax`, `draftTopK`, `draftLogits`, and `headTree` for dynamic draft trees), so
 * a model with this head decodes like any other; the chains run on the device. With a draft
 * vocabulary (`draftVocab`) those inference members restrict offsets 1…k−1 to it.
 *
 * **Input shape** `[batch, seq, hidden]`.
 * **Output shape** `[batch, seq, numHeads, vocabSize]`: column j's logits over the whole
 * vocabulary (also with a draft vocabulary), each module fed the argmax of the column before it
 * (the decoding chain).
 */
export class SequentialMtpHead extends LayerBase {
  /** Name under which the class is registered for serialization. */
  static get className(): string {
    return 'SequentialMtpHead';
  }
  /** Number of offsets k. */
  readonly numHeads: number;
  /** Vocabulary size V. */
  readonly vocabSize: number;
  /** Width H of each module's MLP. */
  readonly headHiddenSize: number;
  /** @deprecated Use `headHiddenSize` (the same value); `mlpHiddenSize` remains until the next minor release. */
  get mlpHiddenSize(): number {
    return this.headHiddenSize;
  }
  /** The shared unembedding (tied to the token embedding), offset 0's head. */
  readonly unembedding: SharedUnembedding;
  private readonly modules: Array<Record<string, LayerVariable>> = [];
  private readonly projection: UnembeddingProjection;
  /** The modules folded for inference while prepared (see `moduleStep`), else null. */
  private folded: { modules: { state: tf.Tensor2D; token: tf.Tensor2D; w1: tf.Tensor2D; b1: tf.Tensor1D; w2: tf.Tensor2D; b2: tf.Tensor1D }[]; tokenScale: tf.Tensor2D } | null = null;
  private preparedCount = 0;
  /** Seed of the modules' random initial values, or `null` (unseeded). */
  readonly seed: number | null;

  constructor(args: SequentialMtpHeadArgs) {
    super(args);
    registerOnce(SequentialMtpHead);
    this.numHeads = checkInteger(WHERE, 'numHeads', args.numHeads, 2, SIZE_LIMITS.numHeads);
    this.vocabSize = checkPositiveInteger(WHERE, 'vocabSize', args.vocabSize, SIZE_LIMITS.vocabSize);
    const oldName = args.headHiddenSize === undefined || args.headHiddenSize === null ? args.mlpHiddenSize : undefined;
    this.headHiddenSize = checkPositiveInteger(WHERE, oldName !== undefined && oldName !== null ? 'mlpHiddenSize' : 'headHiddenSize', headHiddenSizeArg(WHERE, args), SIZE_LIMITS.hiddenSize);
    this.seed = args.seed === undefined || args.seed === null ? null : checkInteger(WHERE, 'seed', args.seed, -(2 ** 31), 2 ** 31 - 1);
    if (args.tiedTo === undefined || args.tiedTo === null) fail(TypeError, WHERE, 'tiedTo', 'must be the token embedding layer or its name', args.tiedTo);
    this.unembedding = new SharedUnembedding({ vocabSize: this.vocabSize, useBias: false, tiedTo: args.tiedTo, name: `${this.name}_unembedding` });
    setWeightNamePrefix(this.unembedding, 'unembedding/');
    this.projection = new UnembeddingProjection(this.unembedding, this.vocabSize);
    if (args.draftVocab !== undefined && args.draftVocab !== null) this.projection.setDraftVocab(checkDraftVocab(WHERE, 'draftVocab', args.draftVocab, this.vocabSize));
  }

  /**
   * The draft vocabulary (increasing token ids) modules 1…k−1 propose from at inference, or `null`
   * for the whole vocabulary. Change it with {@link SequentialMtpHead.setDraftVocab}.
   */
  get draftVocab(): readonly number[] | null {
    return this.projection.draftVocab;
  }

  /**
   * Replaces the draft vocabulary (`ids` as {@link SequentialMtpHeadArgs.draftVocab}, or `null` for
   * the whole vocabulary). Not while the head is prepared for a decode; a decode started later uses it.
   */
  setDraftVocab(ids: readonly number[] | null): void {
    const where = `${WHERE}.setDraftVocab`;
    const checked = ids === null ? null : checkDraftVocab(where, 'ids', ids, this.vocabSize);
    if (this.preparedCount > 0) throw new Error(`${where}: the draft vocabulary must not change while the head is prepared for a decode, but it is prepared; call it before prepare or after the last release.`);
    this.projection.setDraftVocab(checked);
  }

  override apply(inputs: Parameters<Layer['apply']>[0], kwargs?: Parameters<Layer['apply']>[1]): ReturnType<Layer['apply']> {
    if (isSymbolic(inputs)) resolveTie(this.unembedding, inputs);
    return super.apply(inputs, kwargs);
  }

  override build(inputShape: Shape | Shape[]): void {
    const shape = oneShape(inputShape);
    const d = lastDim(WHERE, shape, [2, 3]);
    const specs = sequentialModuleWeights(d, this.headHiddenSize);
    for (const spec of specs) checkWeightSize(WHERE, spec.name, spec.shape); // before any weight exists
    this.unembedding.build(shape);
    for (let j = 1; j < this.numHeads; j++) {
      const w: Record<string, LayerVariable> = {};
      specs.forEach((spec, n) => {
        const seed = this.seed === null ? null : deriveSeed(this.seed, j, n);
        const init = spec.init === 'ones' ? initializers.ones() : spec.init === 'random' ? initializers.glorotUniform(seed === null ? {} : { seed }) : initializers.zeros();
        w[spec.name] = this.addWeight(weightName(this, `module${j}/${spec.name}`), spec.shape, 'float32', init);
        if (spec.init === 'projection') {
          const value = projectionInit(d, seed);
          w[spec.name]!.write(value);
          value.dispose();
        }
      });
      this.modules.push(w);
    }
    this.built = true;
  }

  /** The variables of module `j` (1…k−1) by name: `norm_state`, `norm_token`, `proj`, `w1`, `b1`, `w2`, `b2`. */
  moduleWeights(j: number): Record<string, LayerVariable> {
    const w = this.modules[j - 1];
    if (w === undefined) throw new RangeError(`${WHERE}.moduleWeights: j must be an integer in [1, ${this.numHeads - 1}] of a built layer, but got ${j}.`);
    return w;
  }

  /** Module j: offset j−1's state `[m, D]` and the embeddings `[m, D]` of the tokens at t + j → offset j's state `[m, D]`. */
  moduleState(j: number, previous: tf.Tensor2D, tokenEmbedding: tf.Tensor2D): tf.Tensor2D {
    const w = this.moduleWeights(j);
    return tf.tidy(() => {
      const rms = (x: tf.Tensor2D, g: LayerVariable) => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), SEQUENTIAL_NORM_EPSILON))), g.read()); // [m, D]
      const u = tf.matMul(tf.concat([rms(previous, w['norm_state']!), rms(tokenEmbedding, w['norm_token']!)], 1), w['proj']!.read()); // [m, 2D]·[2D, D] → [m, D]
      const hidden = tf.add(tf.matMul(u, w['w1']!.read()), w['b1']!.read()); // [m, H]
      return tf.add(u, tf.add(tf.matMul(tf.mul(hidden, tf.sigmoid(hidden)), w['w2']!.read()), w['b2']!.read())) as tf.Tensor2D; // [m, D]
    });
  }

  /**
   * Module j fed the tokens `tokens` int32 `[m]` (valid ids) after offset j−1's state `previous`
   * `[m, D]` → offset j's state `[m, D]`: {@link SequentialMtpHead.moduleState} with the embeddings
   * gathered here. Inside a decode (prepared) the same function runs folded into fewer kernels —
   * the norms' gains folded into the projection's halves, the token rows' RMS scale looked up —
   * equal up to float rounding.
   */
  private moduleStep(j: number, previous: tf.Tensor2D, tokens: tf.Tensor1D): tf.Tensor2D {
    const e = this.unembedding.matrix(); // [V, D]
    if (this.folded === null) return this.moduleState(j, previous, tf.gather(e, tokens) as tf.Tensor2D);
    const f = this.folded.modules[j - 1]!;
    if (fusedKernelsAvailable()) return fusedSequentialModule(previous, tokens, e as tf.Tensor2D, this.folded.tokenScale, f, SEQUENTIAL_NORM_EPSILON); // cpu, wasm: one kernel
    return tf.tidy(() => {
      const scale = tf.rsqrt(tf.add(tf.mean(tf.square(previous), -1, true), SEQUENTIAL_NORM_EPSILON)); // [m, 1] the state's 1 / RMS
      const fromState = tf.mul(tf.matMul(previous, f.state), scale); // [m, D] = rms(s)·g_s · P_state
      const fromToken = tf.mul(tf.matMul(tf.gather(e, tokens) as tf.Tensor2D, f.token), tf.gather(this.folded!.tokenScale, tokens)); // [m, D] = rms(e)·g_e · P_token
      const u = tf.add(fromState, fromToken) as tf.Tensor2D; // [m, D]
      const hidden = tf.add(tf.matMul(u, f.w1), f.b1); // [m, H] (tf.fused.matMul would dispatch more kernels: its reshapes and a custom gradient)
      return tf.add(u, tf.add(tf.matMul(tf.mul(hidden, tf.sigmoid(hidden)), f.w2), f.b2)) as tf.Tensor2D; // [m, D]
    });
  }

  /** Folds the modules' weights for inference (see {@link SequentialMtpHead.moduleStep}); copies of the weights of this moment. */
  private fold(): void {
    this.folded = tf.tidy(() => {
      const e = this.unembedding.matrix(); // [V, D]
      const d = e.shape[1];
      const tokenScale = tf.keep(tf.rsqrt(tf.add(tf.mean(tf.square(e), -1, true), SEQUENTIAL_NORM_EPSILON)) as tf.Tensor2D); // [V, 1]
      const modules = this.modules.map((w) => {
        const proj = w['proj']!.read() as tf.Tensor2D; // [2D, D]
        const gain = (name: string) => tf.reshape(w[name]!.read(), [d, 1]); // [D, 1]
        return {
          state: tf.keep(tf.mul(tf.slice(proj, [0, 0], [d, d]), gain('norm_state')) as tf.Tensor2D), // [D, D] diag(g_s)·P_state
          token: tf.keep(tf.mul(tf.slice(proj, [d, 0], [d, d]), gain('norm_token')) as tf.Tensor2D), // [D, D] diag(g_e)·P_token
          w1: tf.keep(tf.clone(w['w1']!.read()) as tf.Tensor2D), // [D, H]
          b1: tf.keep(tf.clone(w['b1']!.read()) as tf.Tensor1D), // [H]
          w2: tf.keep(tf.clone(w['w2']!.read()) as tf.Tensor2D), // [H, D]
          b2: tf.keep(tf.clone(w['b2']!.read()) as tf.Tensor1D), // [D]
        };
      });
      return { modules, tokenScale };
    });
  }

  /** `states` `[m, D]` → logits `[m, V]` with the shared matrix (pre-transposed inside a decode). */
  private unembed(states: tf.Tensor2D): tf.Tensor2D {
    return this.projection.full(states); // [m, V]
  }

  /** Token ids `[m]` (from outside: a broken row's −1 included) clamped into [0, V) for an embedding gather. */
  private clampTokens(tokens: tf.Tensor1D): tf.Tensor1D {
    return tf.minimum(tf.maximum(tokens, tf.scalar(0, 'int32')), tf.scalar(this.vocabSize - 1, 'int32')) as tf.Tensor1D;
  }

  /** Kind, sizes and activation of the modules (the heads file's fields). @internal */
  draftSpec(): DraftHeadSpec {
    return { kind: 'sequential', headHiddenSize: this.headHiddenSize, activation: 'swish' };
  }

  /** The modules' weights in heads-file order (`module<j>/<name>`; empty until built). @internal */
  draftWeights(): DraftHeadWeight[] {
    if (!this.built) return [];
    const d = this.unembedding.matrix().shape[1]!;
    const specs = sequentialModuleWeights(d, this.headHiddenSize);
    return this.modules.flatMap((w, i) => specs.map((spec) => ({ name: `module${i + 1}/${spec.name}`, shape: spec.shape, variable: w[spec.name]! })));
  }

  /**
   * Teacher-forced training logits of offsets 1…k−1 over the draft vocabulary: module j of row i
   * fed the true tokens `nextTokens[i, 0…j−1]` (the tokens at t+1…t+j) on the live weights (never
   * the folded inference copies). `states` `[m, D]`, `nextTokens` int32 `[m, k−1]` → `[m, k−1, Vd]`,
   * column c of the last axis being token `draftVocab[c]` (the whole vocabulary without one).
   */
  trainingLogits(states: tf.Tensor2D, nextTokens: tf.Tensor2D): tf.Tensor3D {
    checkTrainingCall(`${WHERE}.trainingLogits`, this.numHeads, this.built, states, nextTokens);
    return tf.tidy(() => {
      const e = this.unembedding.matrix(); // [V, D]
      const columns: tf.Tensor2D[] = [];
      let s = states;
      for (let j = 1; j < this.numHeads; j++) {
        const emb = tf.gather(e, this.clampTokens(tf.reshape(tf.slice(nextTokens, [0, j - 1], [-1, 1]), [-1]) as tf.Tensor1D)) as tf.Tensor2D; // [m, D]
        s = this.moduleState(j, s, emb);
        columns.push(this.projection.draft(s)); // [m, Vd]
      }
      return tf.stack(columns, 1) as tf.Tensor3D; // [m, k − 1, Vd]
    });
  }

  /**
   * The tokens a decode feeds the modules (see `DraftHeadLayer.decodeFeed`): column 0 the true
   * token at t+1, column j module j's draft (argmax over the draft vocabulary, as a token id) fed
   * column j − 1: the argmax chain a decode drafts at the tip (`argmaxTipChain`), rooted at
   * the true token. `[m, D]`, int32 `[m, k−1]` → int32 `[m, k−1]`. EAGLE-3's "training-time test":
   * training on these, module j + 1 sees what module j drafts, not the text.
   */
  decodeFeed(states: tf.Tensor2D, nextTokens: tf.Tensor2D): tf.Tensor2D {
    checkTrainingCall(`${WHERE}.decodeFeed`, this.numHeads, this.built, states, nextTokens);
    return tf.tidy(() => {
      const root = tf.reshape(tf.slice(nextTokens, [0, 0], [-1, 1]), [-1]) as tf.Tensor1D; // [m] the true token at t+1
      const { ids } = this.argmaxTipChain(states, root, this.numHeads - 2); // modules 1…k−2's drafts, [m] each
      return tf.stack([root, ...ids], 1) as tf.Tensor2D; // [m, k − 1]
    });
  }

  /**
   * The chain on the device from offset 0: per column its logits and argmax tokens, offsets 0…n−1
   * (each module fed the previous column's token). `restricted`: offsets ≥ 1 over the draft
   * vocabulary (their `logits` are `[m, Vd]` subset logits, their tokens within it), as inference
   * drafts; otherwise every column over the whole vocabulary, as `call`.
   */
  private chain(states: tf.Tensor2D, n: number, restricted: boolean, teacher: tf.Tensor2D | null = null, teacherOnly = false): { logits: tf.Tensor2D[]; ids: tf.Tensor1D[] } {
    const logits: tf.Tensor2D[] = [this.unembed(states)]; // [m, V]
    const ids: tf.Tensor1D[] = [tf.argMax(logits[0]!, -1) as tf.Tensor1D]; // int32
    let s = states;
    for (let j = 1; j < n; j++) {
      let fed = ids[j - 1]!; // [m] the previous column's argmax
      if (teacher !== null) {
        const truth = tf.reshape(tf.slice(teacher, [0, j - 1], [-1, 1]), [-1]) as tf.Tensor1D; // [m] the true token at t + j, or −1 beyond the window
        // training: beyond the window the targets are masked, so any valid id will do — and no token may
        // derive from the weights (an argmax on the gradient tape makes the gather's int indices need a gradient)
        fed = teacherOnly ? this.clampTokens(truth) : (tf.where(tf.greaterEqual(truth, tf.scalar(0, 'int32')), truth, fed) as tf.Tensor1D);
      }
      s = teacher !== null ? this.moduleState(j, s, tf.gather(this.unembedding.matrix(), fed) as tf.Tensor2D) : this.moduleStep(j, s, fed); // [m, D]
      if (restricted) {
        logits.push(this.projection.draft(s)); // [m, Vd]
        ids.push(this.projection.pick(logits[j]!).ids);
      } else {
        logits.push(this.unembed(s)); // [m, V]
        ids.push(tf.argMax(logits[j]!, -1) as tf.Tensor1D); // int32
      }
    }
    return { logits, ids };
  }

  /**
   * The chain at the tip: modules 1…n from `states` `[m, D]`, module 1 fed the embedding of
   * `roots` (clamped into [0, V)), module c + 1 fed the token `pick(c, subset logits of column c)`
   * returns. Per column its draft-vocabulary logits `[m, Vd]` and (where picked) its token `[m]`.
   */
  private tipChain(states: tf.Tensor2D, roots: tf.Tensor1D, n: number, pick: (column: number, sub: tf.Tensor2D) => tf.Tensor1D, pickLast: boolean, trusted = false): { subs: tf.Tensor2D[]; ids: tf.Tensor1D[] } {
    const subs: tf.Tensor2D[] = [];
    const ids: tf.Tensor1D[] = [];
    let s = states;
    let token = this.clampTokens(roots); // [m]
    for (let c = 1; c <= n; c++) {
      s = this.moduleStep(c, s, token); // [m, D]
      subs.push(this.projection.draft(s)); // [m, Vd]
      if (c < n || pickLast) ids.push(pick(c, subs[c - 1]!));
      if (c < n) token = trusted ? ids[c - 1]! : this.clampTokens(ids[c - 1]!); // the draft argmax is always an id; a caller's choice is clamped
    }
    return { subs, ids };
  }

  /** The tip chain fed its own draft argmax: the subset logits and tokens of offsets 1…n. */
  private argmaxTipChain(states: tf.Tensor2D, roots: tf.Tensor1D, n: number): { subs: tf.Tensor2D[]; ids: tf.Tensor1D[] } {
    return this.tipChain(states, roots, n, (_, sub) => this.projection.pick(sub).ids, true, true);
  }

  /** bool `[m]`: every logit of every column of the row is finite. */
  private static finiteRows(logits: readonly tf.Tensor2D[]): tf.Tensor1D {
    return tf.isFinite(logits.length === 1 ? tf.sum(logits[0]!, 1) : tf.addN(logits.map((z) => tf.sum(z, 1)))) as tf.Tensor1D; // [m] a non-finite logit (or an overflowing sum) anywhere makes the total non-finite
  }

  /**
   * The argmax tokens of offsets 0…n−1 at every row, chained (column j conditioned on column
   * j−1's token; offsets ≥ 1 within the draft vocabulary), int32 `[m, n]`; a row with a
   * non-finite logit in any column is −1 throughout.
   */
  headArgmax(states: tf.Tensor2D, n: number): tf.Tensor2D {
    checkInteger(`${WHERE}.headArgmax`, 'n', n, 1, this.numHeads);
    if (n === 1) {
      const full = this.projection.fullWeights();
      if (fusedKernelsAvailable() && full !== null) {
        // cpu, wasm, prepared: the verifier's unembedding and checked argmax in one kernel
        const identity = { kind: 'identity', count: 1, activation: 'linear', first: null, firstBias: null, second: null, secondBias: null } as const;
        return tf.tidy(() => tf.reshape(fusedDraftArgmax(states, identity, full.w, full.bias, null), [states.shape[0], 1]) as tf.Tensor2D);
      }
      return tf.tidy(() => tf.expandDims(checkedArgmax(this.unembed(states)), 1) as tf.Tensor2D); // [m, 1] offset 0 alone: the verifier's pass
    }
    return tf.tidy(() => {
      const { logits, ids } = this.chain(states, n, true);
      return breakRows(tf.stack(ids, 1) as tf.Tensor2D, SequentialMtpHead.finiteRows(logits)); // [m, n]
    });
  }

  /**
   * Drafting at the tip: the argmax tokens of offsets 1…n at every row of `states` `[m, D]`, int32
   * `[m, n]`, within the draft vocabulary: module 1 fed the embedding of `roots` int32 `[m]` (the
   * token the verifier committed after the row; clamped into [0, V)) and the row's state, module j
   * fed column j − 1's token and module j − 1's state. A row with a non-finite logit in any column
   * is −1 throughout. Runs modules 1…n at these rows only (never offset 0).
   * @internal
   */
  draftArgmax(states: tf.Tensor2D, roots: tf.Tensor1D, n: number): tf.Tensor2D {
    checkDraftCall(`${WHERE}.draftArgmax`, this.numHeads, states, roots, n);
    return tf.tidy(() => {
      const weights = this.projection.draftWeights();
      if (fusedKernelsAvailable() && this.folded !== null && weights !== null) {
        // cpu, wasm, prepared: the whole chain in one kernel
        const e = this.unembedding.matrix() as tf.Tensor2D; // [V, D]
        return fusedSequentialChain(states, roots, e, this.folded.tokenScale, this.folded.modules.slice(0, n), weights.w, weights.bias, this.projection.idTable(), SEQUENTIAL_NORM_EPSILON);
      }
      if (fusedKernelsAvailable()) {
        // cpu, wasm: each column's argmax, −1 where its logits are not finite (one kernel); the
        // next module is fed it clamped, and such a row is broken below either way
        const table = this.projection.idTable() ?? undefined;
        const { ids } = this.tipChain(states, roots, n, (_, sub) => fusedCheckedArgmax(sub, table), true, this.folded !== null); // the folded module clamps a −1 itself
        const stacked = tf.stack(ids, 1) as tf.Tensor2D; // [m, n]
        return breakRows(stacked, tf.notEqual(stacked, tf.scalar(-1, 'int32'))); // [m, n]
      }
      const { subs, ids } = this.argmaxTipChain(states, roots, n);
      return breakRows(tf.stack(ids, 1) as tf.Tensor2D, SequentialMtpHead.finiteRows(subs)); // [m, n]
    });
  }

  /**
   * The `k` most likely draft tokens of offsets 1…n at every row, along the argmax chain from
   * `roots` (as {@link SequentialMtpHead.draftArgmax}), ranked within the draft vocabulary, with
   * their log-probabilities renormalised over it: `[m, n, k]` each; rank 0 is exactly
   * `draftArgmax`'s column, −1 ids throughout a broken row. `k` is at most the draft vocabulary's size.
   * @internal
   */
  draftTopK(states: tf.Tensor2D, roots: tf.Tensor1D, n: number, k: number): TopKCandidates {
    const where = `${WHERE}.draftTopK`;
    checkDraftCall(where, this.numHeads, states, roots, n);
    checkTopK(where, k, this.projection.draftSize);
    return tf.tidy(() => {
      const { subs } = this.argmaxTipChain(states, roots, n);
      const ranked = subs.map((sub) => this.projection.rank(sub, k)); // n × [m, k]
      return {
        ids: breakRows(tf.stack(ranked.map((r) => r.ids), 1) as tf.Tensor3D, SequentialMtpHead.finiteRows(subs)), // [m, n, k]
        logProbs: tf.stack(ranked.map((r) => r.logProbs), 1) as tf.Tensor3D, // [m, n, k]
      };
    });
  }

  /**
   * Logits of offsets 1…n at every row of `states` `[m, D]`, `[m, n, V]` over the whole vocabulary
   * with `MASKED_LOGIT` outside the draft vocabulary. Module 1 is fed `roots`' embedding; module
   * c + 1 the token `choose(c, column c's logits [m, V])` returns (int32 `[m]`, clamped into
   * [0, V); default: the argmax within the draft vocabulary, as `draftArgmax`), so a sampled chain
   * feeds its own samples forward.
   * @internal
   */
  draftLogits(states: tf.Tensor2D, roots: tf.Tensor1D, n: number, choose?: (column: number, logits: tf.Tensor2D) => tf.Tensor1D): tf.Tensor3D {
    const where = `${WHERE}.draftLogits`;
    checkDraftCall(where, this.numHeads, states, roots, n);
    if (choose !== undefined && typeof choose !== 'function') fail(TypeError, where, 'choose', 'must be a function or undefined', choose);
    return tf.tidy(() => {
      const m = states.shape[0];
      const expanded: tf.Tensor2D[] = [];
      const pick = (c: number, sub: tf.Tensor2D): tf.Tensor1D => {
        expanded[c - 1] = this.projection.expand(sub); // [m, V]
        if (choose === undefined) return this.projection.pick(sub).ids;
        const chosen = choose(c, expanded[c - 1]!);
        if (!(chosen instanceof tf.Tensor) || chosen.rank !== 1 || chosen.shape[0] !== m || chosen.dtype !== 'int32') {
          fail(TypeError, where, 'choose', `must return an int32 tensor [${m}] of token ids`, chosen instanceof tf.Tensor ? `${chosen.dtype} [${chosen.shape.join(', ')}]` : chosen);
        }
        return chosen;
      };
      const { subs } = this.tipChain(states, roots, n, pick, false);
      return tf.stack(subs.map((sub, i) => expanded[i] ?? this.projection.expand(sub)), 1) as tf.Tensor3D; // [m, n, V]
    });
  }

  /**
   * Tree drafting, the EAGLE-2 way (Li et al. 2024, §4.1 expansion, §4.2 re-ranking): from each
   * row of `states` `[m, D]` and its root token `roots` int32 `[m]` (the token the tree hangs
   * under), grows `depth` levels of candidates on the device. Level 1 is the top-`k` of module 1
   * fed the root's embedding; at each deeper level the `k` nodes of the previous level with the
   * highest cumulative log-probability are expanded, each through the next module fed ITS OWN
   * token's embedding and its parent's module state, into its own top-`k` children. Per row, the
   * `G = k + (depth − 1)·k²` candidates come back in generation order (level 1's `k`, then per
   * level `k` groups of `k` siblings, each group in the expanded nodes' score order, siblings in
   * rank order): `ids` int32, `parents` int32 (an index into the same row's list, −1 under the
   * root) and `scores` float32 (the summed log-probabilities of the path), all `[m, G]`. A row
   * whose logits anywhere hold NaN or ±Infinity has −1 in every id. No readback; the caller owns
   * the result.
   */
  headTree(states: tf.Tensor2D, roots: tf.Tensor1D, depth: number, k: number): TreeCandidates {
    const where = `${WHERE}.headTree`;
    checkInteger(where, 'depth', depth, 1, this.numHeads - 1);
    checkInteger(where, 'k', k, 1, Math.min(this.projection.draftSize, MAX_TREE_WIDTH));
    if (roots.rank !== 1 || roots.shape[0] !== states.shape[0]) fail(RangeError, where, 'roots', `must be a 1-D tensor of ${states.shape[0]} tokens (one per row)`, roots.shape);
    const weights = this.projection.draftWeights();
    if (fusedKernelsAvailable() && this.folded !== null && weights !== null) {
      // cpu, wasm, prepared: the whole growth in one kernel, the same candidates as below
      const e = this.unembedding.matrix() as tf.Tensor2D; // [V, D]
      return fusedSequentialTree(states, roots, e, this.folded.tokenScale, this.folded.modules, weights.w, weights.bias, this.projection.idTable(), depth, k, SEQUENTIAL_NORM_EPSILON);
    }
    return tf.tidy(() => {
      const m = states.shape[0];
      const int = (x: number) => tf.scalar(x, 'int32');
      /** Row r's offset in a flattened `[m, width]` table, `[m, 1]` (none for one row, the fast path's case). */
      const rowBase = (t: tf.Tensor, width: number) => (m === 1 ? t : tf.add(t, tf.mul(tf.expandDims(tf.range(0, m, 1, 'int32'), 1), int(width))));
      /**
       * Module j fed `previous` `[n, D]` and the tokens `[n]`: its state, the top-k children `[n, k]`
       * (token ids, ranked within the draft vocabulary) with log-probabilities renormalised over it,
       * and the logits' row sums `[n]` (non-finite iff a logit is).
       */
      const expand = (j: number, previous: tf.Tensor2D, tokens: tf.Tensor1D) => {
        const s = this.moduleStep(j, previous, tokens); // [n, D]
        const logits = this.projection.draft(s); // [n, Vd]
        const { values, indices } = topk2d(logits, k); // [n, k]
        return { s, ids: this.projection.toIds(indices), logProbs: tf.sub(values, tf.logSumExp(logits, 1, true)), sums: tf.sum(logits, 1) };
      };
      // roots come from outside (a broken row's −1 included): clamped into [0, V) for the gather, the row is reported below
      const first = expand(1, states, this.clampTokens(roots)); // [m, k]
      const ids: tf.Tensor[] = [first.ids]; // each [m, width] once reshaped
      const scores: tf.Tensor[] = [first.logProbs];
      const sums: tf.Tensor[] = [tf.reshape(first.sums, [m, 1])];
      const chosen: tf.Tensor[] = []; // per level ≥ 2: the expanded nodes' indices within their level, [m, k]
      // The frontier (the last level): tokens [m·F] and scores [m, F]; the state that ranked it, [m·k, D] (level 1: [m, D], shared by all k).
      let frontier = { ids: tf.reshape(first.ids, [m * k]) as tf.Tensor1D, scores: first.logProbs, states: first.s, shared: true };
      for (let j = 2; j <= depth; j++) {
        const F = frontier.scores.shape[1]!;
        const best = topk2d(frontier.scores as tf.Tensor2D, k); // [m, k] the k frontier nodes to expand, by cumulative score
        const flat = tf.reshape(rowBase(best.indices, F), [m * k]) as tf.Tensor1D; // [m·k] into the flattened frontier
        const slot = frontier.shared ? tf.reshape(rowBase(tf.zerosLike(best.indices), 1), [m * k]) : tf.reshape(rowBase(tf.floorDiv(best.indices, int(k)), k), [m * k]); // [m·k] whose module state ranked each
        const next = expand(j, tf.gather(frontier.states, slot) as tf.Tensor2D, tf.gather(frontier.ids, flat) as tf.Tensor1D); // [m·k, k]
        const childScores = tf.reshape(tf.add(tf.reshape(next.logProbs, [m, k, k]), tf.expandDims(best.values, 2)), [m, k * k]); // [m, k²]
        chosen.push(best.indices);
        ids.push(tf.reshape(next.ids, [m, k * k]));
        scores.push(childScores);
        sums.push(tf.reshape(next.sums, [m, k]));
        frontier = { ids: tf.reshape(next.ids, [m * k * k]) as tf.Tensor1D, scores: childScores, states: next.s, shared: false };
      }
      const finite = tf.isFinite(tf.sum(tf.concat(sums, 1), 1)); // [m]
      const table = tf.concat(ids, 1) as tf.Tensor2D; // [m, G]
      let parents = tf.fill([m, k], -1, 'int32') as tf.Tensor2D; // level 1 hangs under the root
      if (chosen.length > 0) {
        // level j's parents: level j−1's start + the expanded node's index there, each repeated for its k children
        const starts = Array.from({ length: depth - 1 }, (_, i) => (i === 0 ? 0 : k + (i - 1) * k * k));
        const offsets = tf.tensor1d(starts.flatMap((st) => Array<number>(k).fill(st)), 'int32'); // [(depth − 1)·k]
        const expanded = tf.add(tf.concat(chosen, 1), offsets); // [m, (depth − 1)·k]
        parents = tf.concat([parents, tf.reshape(tf.tile(tf.expandDims(expanded, 2), [1, 1, k]), [m, (depth - 1) * k * k])], 1) as tf.Tensor2D;
      }
      return {
        ids: tf.where(tf.expandDims(finite, 1), table, tf.fill(table.shape, -1, 'int32')) as tf.Tensor2D,
        parents,
        scores: tf.concat(scores, 1) as tf.Tensor2D,
      };
    });
  }

  /**
   * Logits of `offsets` (each computed along the decoding chain) at the rows of `states` `[m, D]`
   * → `[m, offsets.length, V]`; offsets ≥ 1 over the draft vocabulary (−1e30 outside it).
   */
  logits(states: tf.Tensor2D, offsets: readonly number[]): tf.Tensor3D {
    if (!Array.isArray(offsets) || offsets.length === 0) fail(RangeError, `${WHERE}.logits`, 'offsets', 'must be a non-empty array', offsets);
    offsets.forEach((j, i) => checkInteger(`${WHERE}.logits`, `offsets[${i}]`, j, 0, this.numHeads - 1));
    return tf.tidy(() => {
      const { logits } = this.chain(states, Math.max(...offsets) + 1, true);
      return tf.stack(offsets.map((j) => (j === 0 ? logits[0]! : this.projection.expand(logits[j]!))), 1) as tf.Tensor3D; // [m, n, V]
    });
  }

  /**
   * Pre-transposes the unembedding and the draft vocabulary's rows for a decode (counted; one
   * {@link SequentialMtpHead.release} each; the first prepare makes them from the current weights).
   */
  prepare(): void {
    if (this.preparedCount === 0) {
      this.projection.make();
      this.fold();
    }
    this.preparedCount += 1;
  }

  /** Undoes one {@link SequentialMtpHead.prepare}; the last frees the prepared matrices. */
  release(): void {
    if (this.preparedCount === 0) return;
    this.preparedCount -= 1;
    if (this.preparedCount === 0) {
      this.projection.free();
      if (this.folded !== null) tf.dispose([this.folded.tokenScale, ...this.folded.modules.flatMap((f) => [f.state, f.token, f.w1, f.b1, f.w2, f.b2])]);
      this.folded = null;
    }
  }

  /**
   * Every column over the whole vocabulary. Input `x` `[b, s, D]` alone: each module fed the
   * previous column's whole-vocabulary argmax (the decoding chain; a draft vocabulary restricts the
   * inference members only, never `call`/`predict`). Inputs `[x, ids]` with the token ids `[b, s]`
   * of the same positions (as `createTransformer` and `withSequentialHeads` wire them): teacher
   * forced, module j at position t fed the true token `ids[t + j]` wherever it is inside the
   * window (the argmax chain beyond it; in training, where the targets there are masked, a fixed
   * id), so `fit` with `multiTokenLossFunction` trains the modules
   * on the true tokens (DeepSeek-V3 §2.2) and `predict` gives the logits greedy acceptance tests.
   */
  override call(inputs: tf.Tensor | tf.Tensor[], kwargs?: Record<string, unknown>): tf.Tensor {
    return tf.tidy(() => {
      const x = one(inputs); // [b, s, D]
      const [b, s, d] = x.shape as [number, number, number];
      const ids = Array.isArray(inputs) && inputs.length > 1 ? inputs[1]! : null;
      const training = kwargs?.['training'] === true;
      let teacher: tf.Tensor2D | null = null;
      if (ids !== null) {
        if (ids.rank !== 2 || ids.shape[0] !== b || ids.shape[1] !== s) throw new RangeError(`${WHERE}: the token ids input must be [${b}, ${s}] (one id per position of the states), but got [${ids.shape.join(', ')}].`);
        const tokens = tf.cast(ids, 'int32') as tf.Tensor2D; // [b, s]
        const columns = Array.from({ length: this.numHeads - 1 }, (_, i) => {
          const j = i + 1; // module j reads the token at t + j
          if (j >= s) return tf.fill([b, s], -1, 'int32') as tf.Tensor2D;
          return tf.concat([tf.slice(tokens, [0, j], [b, s - j]), tf.fill([b, j], -1, 'int32')], 1) as tf.Tensor2D; // [b, s]
        });
        teacher = tf.reshape(tf.stack(columns, 2), [b * s, this.numHeads - 1]) as tf.Tensor2D; // [b·s, k − 1]
      }
      const { logits } = this.chain(tf.reshape(x, [b * s, d]) as tf.Tensor2D, this.numHeads, false, teacher, teacher !== null && training);
      return tf.reshape(tf.stack(logits, 1), [b, s, this.numHeads, this.vocabSize]); // [b, s, k, V]
    });
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return [...oneShape(inputShape).slice(0, -1), this.numHeads, this.vocabSize];
  }

  override getConfig(): tf.serialization.ConfigDict {
    const tied = (this.unembedding.getConfig() as { tiedTo?: string }).tiedTo;
    const config: tf.serialization.ConfigDict = { numHeads: this.numHeads, vocabSize: this.vocabSize, headHiddenSize: this.headHiddenSize, tiedTo: tied ?? null };
    if (this.draftVocab !== null) config['draftVocab'] = [...this.draftVocab];
    if (this.seed !== null) config['seed'] = this.seed;
    return { ...config, ...super.getConfig() };
  }
}

/**
 * Creates a {@link SequentialMtpHead}.
 *
 * @example
 * const head = sequentialMtpHead({ numHeads: 4, vocabSize: 512, headHiddenSize: 256, tiedTo: trunk });
 */
export function sequentialMtpHead(args: SequentialMtpHeadArgs): SequentialMtpHead {
  return new SequentialMtpHead(args);
}
