/**
 * Online adaptation of draft heads: heads that learn from what the model verifies. After a
 * decode, the committed text is free supervision — every committed token is the verifier's own
 * output (its argmax under greedy acceptance, a sample of its distribution under sampling), so
 * draft offset j at position t is trained toward the committed token at t + 1 + j. A
 * {@link HeadAdapter} keeps a bounded replay buffer of the trunk states and tokens of the texts it
 * has seen and takes a few Adam steps on the draft weights only after each one. Offset 0 and the
 * trunk never change, so decoding with the adapted heads gives exactly the text it gave before
 * (every acceptance rule stays exact); only how many drafts are kept changes.
 *
 * Cost is bounded twice: at most `stepsPerUpdate` steps of `batchSize` rows per `learn`, and —
 * when `learn` is given the decode's `DecodeResult` — at most `maxShare` of the decoding time
 * seen so far, counted cumulatively: each decode adds `maxShare × wallTimeMs` of credit, the trunk
 * pass over a text and each step spend their measured time, and nothing starts that the credit
 * (by the last measured duration) cannot pay for. A text that cannot be paid for is skipped
 * whole. So over many decodes, adaptation time ≤ maxShare × decode time (+ at most one learn).
 *
 * Reference: Liu et al., "Online Speculative Decoding" (ICML 2024), §3–4 (distilling the draft
 * model on the target's own outputs as queries arrive); Cai et al., "Medusa" (2024), §2.3.2
 * (self-distillation of draft heads on the base model's outputs).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { DecodeResult } from '../decoding/result.js';
import { uniformStream } from '../decoding/random.js';
import { macrotask } from '../decoding/event_loop.js';
import { checkInteger, checkPositiveInteger, fail } from '../internal/errors.js';
import { checkKeys } from '../internal/keys.js';
import { type DraftHeadLayer, findDraftHead } from '../layers/draft_head.js';
import { TransformerTrunk } from './trunk.js';

const WHERE = 'createHeadAdapter';
const LEARN = 'HeadAdapter.learn';

/** Options of {@link createHeadAdapter}. @inline */
export interface HeadAdapterOptions {
  /** Adam learning rate of the draft weights. Default 1e-3. */
  learningRate?: number;
  /** Integer in [1, 1000]: most gradient steps per `learn`. Default 8. */
  stepsPerUpdate?: number;
  /** Integer in [1, 65536]: rows (positions) per step, drawn from the replay buffer. Default 256. */
  batchSize?: number;
  /** Integer in [16, 1048576]: positions the replay buffer keeps (the newest). Default 4096. */
  bufferSize?: number;
  /** In (0, 10]: most adaptation time as a share of the decoding time, counted over the `learn` calls given a `DecodeResult` (see the module header). Default 0.25. */
  maxShare?: number;
  /** Integer: seed of the rows each step draws. Default 0. */
  seed?: number;
}

const OPTION_KEYS = ['learningRate', 'stepsPerUpdate', 'batchSize', 'bufferSize', 'maxShare', 'seed'] as const;

/** What one `learn` did. @inline */
export interface AdaptReport {
  /** Gradient steps taken (0 when the text had no complete position, or the time bound allowed none). */
  steps: number;
  /** Positions added to the replay buffer from this text. */
  positions: number;
  /** Positions in the buffer after it. */
  buffered: number;
  /** Mean loss of the steps (cross-entropy of the drafts against the committed tokens), or NaN without steps. */
  loss: number;
  /** Milliseconds spent (the trunk pass over the text included). */
  ms: number;
  /** Whether the text was skipped because the time credit could not pay for its trunk pass and a step. */
  skipped: boolean;
}

/** Heads that adapt to the text the model commits; see the module header. @inline */
export interface HeadAdapter {
  /**
   * Learns from one committed text: the prompt's ids and the decoder's result (or the new ids).
   * Runs the trunk once over the text, adds its positions to the replay buffer, then takes up to
   * `stepsPerUpdate` steps, yielding to the event loop between steps. Given a `DecodeResult`, the
   * time credit it adds bounds all of that (fewer steps, or the text skipped; see the module
   * header); given bare ids, nothing is bounded but `stepsPerUpdate`. Call it between decodes of the same model. `signal`: an abort stops it
   * before the next step and rejects with the signal's reason (the steps already taken stay).
   */
  learn(prompt: ArrayLike<number>, result: DecodeResult | ArrayLike<number>, options?: { signal?: AbortSignal }): Promise<AdaptReport>;
  /** Steps taken so far, over every `learn`. */
  readonly steps: number;
  /** Frees the replay buffer and the optimizer's state (the adapted weights stay in the model). */
  dispose(): void;
}

/** The model's trunk. */
function trunkOf(model: LayersModel): TransformerTrunk {
  const trunk = model.layers.find((l) => l instanceof TransformerTrunk || l.getClassName() === TransformerTrunk.className);
  if (trunk === undefined) throw new TypeError(`${WHERE}: model must have a ${TransformerTrunk.className} layer (a model from createTransformer, loadLlama2c or loadHfLlama), but model '${model.name}' has layers [${model.layers.map((l) => l.getClassName()).join(', ')}].`);
  return trunk as TransformerTrunk;
}

/** A number option in [min, max] (`min` excluded when `open`). */
function checkRange(arg: string, value: unknown, min: number, max: number, open: boolean): number {
  const bad = typeof value !== 'number' || !Number.isFinite(value) || value > max || (open ? value <= min : value < min);
  if (bad) fail(RangeError, WHERE, `options.${arg}`, `must be a number in ${open ? '(' : '['}${min}, ${max}]`, value);
  return value as number;
}

/** Token ids of a `learn` argument, checked against the vocabulary. */
function idsOf(arg: string, value: unknown, vocabSize: number): number[] {
  const list = value !== null && typeof value === 'object' && 'tokens' in (value as object) && 'stats' in (value as object) ? (value as DecodeResult).tokens : value;
  const isList = Array.isArray(list) || (ArrayBuffer.isView(list) && !(list instanceof DataView));
  if (!isList) fail(TypeError, LEARN, arg, 'must be an array of token ids (or a DecodeResult)', value);
  const ids = Array.from(list as ArrayLike<number>);
  ids.forEach((t, i) => checkInteger(LEARN, `${arg}[${i}]`, t, 0, vocabSize - 1));
  return ids;
}

/**
 * Creates an adapter for `model`'s draft heads (see the module header). The model's head must have
 * draft offsets with weights (k ≥ 2; e.g. `mlp` offsets or sequential modules). On the wasm
 * backend, training sequential modules reads the embedding by `gather` but never trains it, so no
 * extra kernel is needed.
 *
 * @example
 * const adapter = createHeadAdapter(model, { stepsPerUpdate: 8 });
 * const out = await speculativeDecode(cached, prompt, { maxNewTokens: 64 });
 * await adapter.learn(prompt, out); // the next decodes draft better on this kind of text
 */
export function createHeadAdapter(model: LayersModel, options: HeadAdapterOptions = {}): HeadAdapter {
  if (options === null || typeof options !== 'object') fail(TypeError, WHERE, 'options', 'must be an object', options);
  checkKeys(WHERE, 'options', options, OPTION_KEYS);
  const head: DraftHeadLayer = findDraftHead(WHERE, model);
  const trunk = trunkOf(model);
  const k = head.numHeads;
  const weights = head.draftWeights();
  if (k < 2 || weights.length === 0) {
    throw new RangeError(`${WHERE}: model's head must have draft offsets with weights to adapt (numHeads ≥ 2, not identity offsets), but it has numHeads ${k} and ${weights.length} draft weights; load it with draft heads (e.g. loadLlama2c(bin, { mtpHeads: 4, headKind: 'mlp', headHiddenSize: 256 })).`);
  }
  const learningRate = checkRange('learningRate', options.learningRate ?? 1e-3, 0, 1, true);
  const stepsPerUpdate = checkInteger(WHERE, 'options.stepsPerUpdate', options.stepsPerUpdate ?? 8, 1, 1000);
  const batchSize = checkPositiveInteger(WHERE, 'options.batchSize', options.batchSize ?? 256, 65536);
  const bufferSize = checkInteger(WHERE, 'options.bufferSize', options.bufferSize ?? 4096, 16, 1 << 20);
  const maxShare = checkRange('maxShare', options.maxShare ?? 0.25, 0, 10, true);
  const random = uniformStream(checkInteger(WHERE, 'options.seed', options.seed ?? 0, -(2 ** 31), 2 ** 31 - 1));
  const variables = weights.map((w) => w.variable.read() as tf.Variable);
  const optimizer = tf.train.adam(learningRate);

  // The replay buffer: per kept position, its trunk state [D], the tokens at t+1…t+k−1 it is fed
  // and the tokens at t+2…t+k its offsets 1…k−1 are trained toward (as draft columns, −1 outside).
  let states: tf.Tensor2D | null = null; // [N, D]
  let fed: Int32Array = new Int32Array(0); // [N·(k−1)]
  let targets: Int32Array = new Int32Array(0); // [N·(k−1)]
  let count = 0;
  let steps = 0;
  let disposed = false;
  let busy = false;
  let lastStepMs = 0; // the last step's time: the estimate that keeps the next one inside the credit
  let lastRememberMs = 0; // the last trunk pass's time
  let credit = 0; // ms of adaptation the decodes seen so far pay for (maxShare × their time, minus what was spent)

  const column = (): ((t: number) => number) => {
    const vocab = head.draftVocab;
    if (vocab === null) return (t) => t;
    const map = new Map(vocab.map((t, i) => [t, i]));
    return (t) => map.get(t) ?? -1;
  };

  /** Adds a text's complete positions (t with t + k inside it) to the buffer, dropping the oldest beyond `bufferSize`. */
  function remember(ids: number[]): number {
    const T = ids.length;
    const m = T - k; // positions 0…T−k−1 have the tokens at t+1…t+k
    if (m <= 0) return 0;
    const toColumn = column();
    const newFed = new Int32Array(m * (k - 1));
    const newTargets = new Int32Array(m * (k - 1));
    for (let t = 0; t < m; t++) {
      for (let j = 1; j < k; j++) {
        newFed[t * (k - 1) + j - 1] = ids[t + j]!;
        newTargets[t * (k - 1) + j - 1] = toColumn(ids[t + 1 + j]!);
      }
    }
    const fresh = tf.tidy(() => {
      const h = trunk.apply(tf.tensor2d(ids, [1, T], 'int32')) as tf.Tensor; // [1, T, D]
      return tf.reshape(tf.slice(h, [0, 0, 0], [1, m, -1]), [m, -1]) as tf.Tensor2D; // [m, D]
    });
    const keep = Math.min(bufferSize, count + m);
    const drop = count + m - keep; // oldest positions dropped
    const next = tf.tidy(() => {
      const all = states === null ? fresh : tf.concat([states, fresh], 0);
      return drop > 0 ? (tf.slice(all, [drop, 0], [keep, -1]) as tf.Tensor2D) : (tf.clone(all) as tf.Tensor2D);
    });
    fresh.dispose();
    states?.dispose();
    states = next;
    const joinAndTrim = (old: Int32Array, add: Int32Array) => {
      const all = new Int32Array(old.length + add.length);
      all.set(old, 0);
      all.set(add, old.length);
      return all.slice(drop * (k - 1));
    };
    fed = joinAndTrim(fed, newFed);
    targets = joinAndTrim(targets, newTargets);
    count = keep;
    return m;
  }

  /** One Adam step on `batchSize` buffered positions; resolves to its loss. */
  async function step(): Promise<number> {
    const rows = new Int32Array(batchSize);
    const batchFed = new Int32Array(batchSize * (k - 1));
    const batchTargets = new Int32Array(batchSize * (k - 1));
    for (let r = 0; r < batchSize; r++) {
      const p = Math.floor(random() * count);
      rows[r] = p;
      batchFed.set(fed.subarray(p * (k - 1), (p + 1) * (k - 1)), r * (k - 1));
      batchTargets.set(targets.subarray(p * (k - 1), (p + 1) * (k - 1)), r * (k - 1));
    }
    const lossValue = tf.tidy(() => {
      const x = tf.gather(states!, tf.tensor1d(rows, 'int32')) as tf.Tensor2D; // [b, D]
      const next = tf.tensor2d(batchFed, [batchSize, k - 1], 'int32');
      const target = tf.tensor2d(batchTargets, [batchSize, k - 1], 'int32');
      const { value, grads } = tf.variableGrads(() => {
        const logp = tf.logSoftmax(head.trainingLogits(x, next)); // [b, k−1, Vd]
        const hot = tf.oneHot(target, logp.shape[2]); // [b, k−1, Vd] (−1: a zero row, left out)
        const valid = tf.cast(tf.greaterEqual(target, tf.scalar(0, 'int32')), 'float32'); // [b, k−1]
        return tf.div(tf.neg(tf.sum(tf.mul(hot, logp))), tf.maximum(tf.sum(valid), 1)) as tf.Scalar;
      }, variables);
      optimizer.applyGradients(grads as tf.NamedTensorMap as Parameters<tf.AdamOptimizer["applyGradients"]>[0]);
      return value;
    });
    try {
      return (await lossValue.data())[0]!; // one small readback per step
    } finally {
      lossValue.dispose();
    }
  }

  return {
    get steps() {
      return steps;
    },
    async learn(prompt, result, options = {}) {
      if (options === null || typeof options !== 'object') fail(TypeError, LEARN, 'options', 'must be an object', options);
      checkKeys(LEARN, 'options', options, ['signal']);
      const signal = options.signal;
      if (signal !== undefined && !(signal instanceof AbortSignal)) fail(TypeError, LEARN, 'options.signal', 'must be an AbortSignal', signal);
      signal?.throwIfAborted();
      if (disposed) throw new Error(`${LEARN}: the adapter must not be used after dispose(), but it was disposed.`);
      if (busy) throw new Error(`${LEARN}: one learn at a time per adapter, but another is still running; await it first.`);
      const start = performance.now();
      const ids = [...idsOf('prompt', prompt, head.vocabSize), ...idsOf('result', result, head.vocabSize)];
      const decodeMs = result !== null && typeof result === 'object' && 'stats' in (result as object) ? (result as DecodeResult).stats.wallTimeMs : null;
      if (decodeMs !== null && !(Number.isFinite(decodeMs) && decodeMs >= 0)) fail(RangeError, LEARN, 'result.stats.wallTimeMs', 'must be a finite number ≥ 0', decodeMs);
      busy = true;
      head.prepare(); // the pre-transposed unembedding for the steps' projections (it is frozen; the draft weights stay live)
      try {
        const bounded = decodeMs !== null;
        if (bounded) credit = Math.min(credit + maxShare * decodeMs, lastRememberMs + stepsPerUpdate * lastStepMs + maxShare * decodeMs); // at most one full learn saved up
        if (bounded && credit < lastRememberMs + lastStepMs) {
          return { steps: 0, positions: 0, buffered: count, loss: Number.NaN, ms: performance.now() - start, skipped: true };
        }
        const rememberStart = performance.now();
        const positions = remember(ids);
        lastRememberMs = performance.now() - rememberStart;
        if (bounded) credit -= lastRememberMs;
        let taken = 0;
        let lossSum = 0;
        while (count > 0 && taken < stepsPerUpdate && (!bounded || credit >= lastStepMs)) {
          const before = performance.now();
          lossSum += await step();
          taken += 1;
          steps += 1;
          lastStepMs = performance.now() - before;
          if (bounded) credit -= lastStepMs;
          await macrotask();
          signal?.throwIfAborted();
        }
        return { steps: taken, positions, buffered: count, loss: taken === 0 ? Number.NaN : lossSum / taken, ms: performance.now() - start, skipped: false };
      } finally {
        head.release();
        busy = false;
      }
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      states?.dispose();
      states = null;
      optimizer.dispose();
    },
  };
}

