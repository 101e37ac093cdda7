/**
 * `trainDraftHeads(model, options)`: trains the draft offsets 1…k−1 of a frozen model's head
 * (parallel offset heads or sequential MTP modules) on the running backend, and returns them as
 * a draft-heads file's contents. The trunk and offset 0 never change, so every greedy output of
 * the model stays exactly as it was.
 *
 *   1. corpus: the frozen model writes its own text (self-distillation) or reads the given text,
 *      keeping the trunk's final hidden state at every position (./corpus.ts);
 *   2. data: the states on the device, offset 0's argmax at every position as the teacher, the
 *      held-out split and, with `draftVocab`, the most frequent tokens as the draft vocabulary
 *      (./data.ts);
 *   3. Adam on the draft weights only, in batches of cached positions, the learning rate decaying
 *      linearly to 10 % over the budget; one awaited readback (the loss) per step, a turn for
 *      the event loop every few milliseconds, the held-out τ estimate every `evaluateEvery`
 *      seconds (./loss.ts, ./evaluate.ts);
 *   4. the result: the final heads, or after an abort the best evaluated ones; attached to the
 *      model unless `attach: false`.
 *
 * Reference: Cai et al., "Medusa" (2024), §2.3 (heads trained on a frozen base by
 * self-distillation); DeepSeek-AI, "DeepSeek-V3" (2024), §2.2 (sequential MTP modules).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { now } from '../../decoding/event_loop.js';
import { uniformStream } from '../../decoding/random.js';
import { fail } from '../../internal/errors.js';
import { modelStopTokens } from '../../internal/stop_tokens.js';
import { type DraftHeadLayer, findDraftHead } from '../../layers/draft_head.js';
import { baseFingerprint, type DraftHeads, modelDraftHeads } from '../draft_heads.js';
import { TransformerTrunk } from '../trunk.js';
import { buildCorpus, type Corpus, cutSequences, type FrozenModel, hiddenStates, maybeYield } from './corpus.js';
import { disposeData, frequentTokens, type HeadData, prepareData } from './data.js';
import { evaluate, type HeldOutMetrics } from './evaluate.js';
import { batchLoss, decodeFedTokens, HARD_WEIGHT, type LossTerms } from './loss.js';
import { type ResolvedTrainOptions, resolveTrainOptions, type TrainDraftHeadsOptions, type TrainDraftHeadsProgress } from './options.js';

const FN = 'trainDraftHeads';
/** The learning rate at the end of the budget, as a share of the initial one. */
const FINAL_LEARNING_RATE = 0.1;
/** Share of `seconds` the self-distillation corpus may take (training gets the rest). */
const CORPUS_SHARE = 0.5;

/** The model's trunk and draft head, checked: a TransformerTrunk, a built head with trainable draft offsets. */
function frozenParts(model: LayersModel): FrozenModel {
  const head = findDraftHead(FN, model);
  const trunk = model.layers.find((l) => l instanceof TransformerTrunk || l.getClassName() === TransformerTrunk.className) as TransformerTrunk | undefined;
  if (trunk === undefined) {
    throw new TypeError(`${FN}: model must contain a TransformerTrunk (a model from loadLlama2c, loadHfLlama or createTransformer), but model '${model.name}' has layers [${model.layers.map((l) => l.getClassName()).join(', ')}].`);
  }
  if (!head.built) fail(Error, FN, 'model', 'must be built (its head has no weights yet)', model.name);
  if (head.numHeads < 2) {
    throw new RangeError(
      `${FN}: model must have draft offsets (numHeads at least 2), but its head has numHeads ${head.numHeads}; load it with draft heads, e.g. loadLlama2c(checkpoint, { mtpHeads: 4, headKind: 'mlp', headHiddenSize: 256 }), or give it sequential modules with withSequentialHeads(model, 4, 256).`,
    );
  }
  if (head.draftWeights().length === 0) fail(RangeError, FN, 'model', "must have draft offsets with weights to train (not kind 'identity')", head.draftSpec().kind);
  const [vocabSize, hiddenSize] = head.unembedding.matrix().shape as [number, number];
  return { trunk, head, hiddenSize, vocabSize };
}

/** Kept copies of the draft weights' values (to restore or to keep the best). */
function snapshot(head: DraftHeadLayer): tf.Tensor[] {
  return head.draftWeights().map((w) => tf.keep(tf.clone(w.variable.read())));
}

/** Writes a {@link snapshot} back into the draft weights (the snapshot stays owned by the caller). */
function restore(head: DraftHeadLayer, values: readonly tf.Tensor[]): void {
  head.draftWeights().forEach((w, i) => w.variable.write(values[i]!));
}

/** The training text and its hidden states (./corpus.ts), reporting progress. */
async function makeCorpus(model: FrozenModel, stopTokens: readonly number[], o: ResolvedTrainOptions, start: number, clock: { last: number }, report: (p: Partial<TrainDraftHeadsProgress>) => void): Promise<Corpus> {
  const t0 = now();
  const onBatch = (tokens: number) => report({ phase: 'corpus', corpusTokens: tokens, tokensPerSecond: tokens / Math.max(1e-3, (now() - t0) / 1000) });
  if (o.data.kind === 'sequences') {
    const sequences = cutSequences(o.data.sequences, o.sequenceTokens, model.head.numHeads);
    if (sequences.length === 0) fail(RangeError, FN, 'options.sequences', `must hold a sequence of at least numHeads (${model.head.numHeads}) tokens`, o.data.sequences.length);
    return { sequences, hidden: await hiddenStates(model, sequences, clock, o.signal, onBatch) };
  }
  const startToken = stopTokens[0] ?? null;
  return buildCorpus(
    model,
    {
      tokens: o.data.corpusTokens,
      sequenceTokens: o.sequenceTokens,
      greedyShare: o.data.greedyShare,
      openings: o.data.openings,
      startToken,
      stopTokens,
      seed: o.seed,
      deadline: start + CORPUS_SHARE * o.seconds * 1000,
    },
    clock,
    o.signal,
    onBatch,
  );
}

/** What one training run did. */
interface RunFacts {
  steps: number;
  trainingSeconds: number;
  lossPerOffset: number[];
  stoppedBy: 'steps' | 'seconds' | 'signal';
  heldOut: HeldOutMetrics | null;
}

/**
 * Adam on the head's draft weights until the budget ends or the signal aborts; the held-out τ
 * estimate every `evaluateEvery` seconds. After an abort the best evaluated weights are restored.
 */
async function trainLoop(head: DraftHeadLayer, data: HeadData, o: ResolvedTrainOptions, start: number, clock: { last: number }, report: (p: Partial<TrainDraftHeadsProgress>) => void): Promise<RunFacts> {
  const variables = head.draftWeights().map((w) => w.variable.read() as tf.Variable);
  const optimizer = tf.train.adam(o.learningRate, 0.9, 0.99, 1e-8);
  const random = uniformStream((o.seed ^ 0x5eed) >>> 0);
  const terms: LossTerms = { hardWeight: HARD_WEIGHT[o.targets] };
  const rows = new Int32Array(Math.min(o.batchSize, data.trainRows.length));
  let best: { tau: number; values: tf.Tensor[] } | null = null;
  let lossPerOffset: number[] = [];
  let step = 0;
  let stoppedBy: RunFacts['stoppedBy'] = 'steps';
  const evaluateNow = async (): Promise<HeldOutMetrics | null> => {
    const metrics = await evaluate(head, data, clock);
    if (metrics !== null && (best === null || metrics.tau > best.tau)) {
      tf.dispose(best?.values ?? []);
      best = { tau: metrics.tau, values: snapshot(head) };
    }
    report({ phase: 'evaluating', step, lossPerOffset, ...(metrics !== null ? { heldOutTau: metrics.tau } : {}) });
    return metrics;
  };
  try {
    const t0 = now();
    await evaluateNow(); // the initial heads: the baseline an abort can fall back to
    const evaluationMs = now() - t0;
    const trainStart = now();
    const deadline = start + o.seconds * 1000 - 1.5 * evaluationMs; // the final evaluation fits the budget
    let lastEvaluation = now();
    while (step < o.steps) {
      if (now() >= deadline) {
        stoppedBy = 'seconds';
        break;
      }
      if (o.signal?.aborted) {
        stoppedBy = 'signal';
        break;
      }
      const done = Math.max(step / o.steps, (now() - trainStart) / Math.max(1, deadline - trainStart)); // share of the budget used
      (optimizer as unknown as { learningRate: number }).learningRate = o.learningRate * (1 - (1 - FINAL_LEARNING_RATE) * Math.min(1, done));
      for (let r = 0; r < rows.length; r++) rows[r] = data.trainRows[Math.floor(random() * data.trainRows.length)]!;
      const perOffset = tf.tidy(() => {
        let kept: tf.Tensor1D | null = null;
        const batch = tf.tensor1d(rows, 'int32'); // [m]
        const fed = o.feed === 'drafts' ? decodeFedTokens(head, data, batch) : null; // [m, k−1] the modules' own drafts, before the tape
        const { grads } = tf.variableGrads(() => {
          const out = batchLoss(head, data, batch, { ...terms, fed });
          kept = tf.keep(out.perOffset); // [k−1], outlives the gradient's scope
          return out.loss;
        }, variables);
        optimizer.applyGradients(grads as tf.NamedTensorMap as Parameters<tf.AdamOptimizer['applyGradients']>[0]);
        return kept!;
      });
      lossPerOffset = Array.from(await perOffset.data()); // the one readback of the step
      perOffset.dispose();
      step += 1;
      report({ phase: 'training', step, lossPerOffset, tokensPerSecond: (step * rows.length) / Math.max(1e-3, (now() - trainStart) / 1000) });
      await maybeYield(clock);
      if (now() - lastEvaluation >= o.evaluateEvery * 1000 && step < o.steps) {
        await evaluateNow();
        lastEvaluation = now();
      }
    }
    const trainingSeconds = (now() - trainStart) / 1000;
    let heldOut = await evaluateNow();
    const kept = best as { tau: number; values: tf.Tensor[] } | null;
    if (stoppedBy === 'signal' && kept !== null && heldOut !== null && kept.tau > heldOut.tau) {
      restore(head, kept.values); // Stop keeps the best heads
      heldOut = await evaluate(head, data, clock);
    }
    return { steps: step, trainingSeconds, lossPerOffset, stoppedBy, heldOut };
  } finally {
    optimizer.dispose();
    tf.dispose((best as { values: tf.Tensor[] } | null)?.values ?? []);
  }
}

/**
 * Trains the draft heads a frozen model already has (offsets 1…k−1 of its `MultiTokenHead`, any
 * kind with weights, or its `SequentialMtpHead`'s modules) on the running backend — cpu, wasm
 * (after `registerWasmTrainingKernels()`), webgl or webgpu — and returns them as a draft-heads
 * file's contents (`writeDraftHeads` makes the bytes). The trunk and offset 0 are never changed.
 *
 * Without `sequences` or `texts` the model writes its own training text (self-distillation),
 * batched on the device. The call yields to the event loop every few milliseconds, so a page
 * stays responsive and an `AbortSignal` (a Stop button, `AbortSignal.timeout`) is seen within a
 * step.
 *
 * @example
 * ```ts
 * const { model } = await loadLlama2c(checkpoint, { mtpHeads: 4, headKind: 'mlp', headHiddenSize: 256 });
 * const heads = await trainDraftHeads(model, { seconds: 120 }); // attached to model
 * console.log(heads.manifest.training); // steps, loss, held-out τ estimate, …
 * const bytes = writeDraftHeads(heads); // a file for loadLlama2c(checkpoint, { draftHeads: bytes })
 * ```
 * @param model A transformer of this package with draft offsets (e.g. from `loadLlama2c` with
 *   `mtpHeads` and `headKind`, or `withSequentialHeads`).
 * @param options Data, budget, schedule, abort and progress (see {@link TrainDraftHeadsOptions}).
 * @returns The trained heads: their manifest (with `training` facts: steps, seconds, loss,
 *   held-out metrics and τ estimate, corpus size, seed) and values.
 */
export async function trainDraftHeads(model: LayersModel, options: TrainDraftHeadsOptions = {}): Promise<DraftHeads> {
  const start = now();
  const frozen = frozenParts(model);
  const { head, vocabSize } = frozen;
  const o = resolveTrainOptions(options, { vocabSize, maxLength: frozen.trunk.arch.maxLength, numHeads: head.numHeads });
  if (o.feed === 'drafts' && head.draftSpec().kind !== 'sequential') fail(TypeError, FN, 'options.feed', `must be 'truth' for parallel '${head.draftSpec().kind}' heads (they are fed no tokens; 'drafts' is for sequential modules)`, o.feed);
  const clock = { last: now() };
  const progress: TrainDraftHeadsProgress = { phase: 'corpus', step: 0, ...(Number.isFinite(o.steps) ? { steps: o.steps } : {}), loss: NaN, lossPerOffset: [], tokensPerSecond: 0, corpusTokens: 0, seconds: 0 };
  const report = (p: Partial<TrainDraftHeadsProgress>): void => {
    Object.assign(progress, p, { seconds: (now() - start) / 1000 });
    if (p.lossPerOffset !== undefined) progress.loss = p.lossPerOffset.length === 0 ? NaN : p.lossPerOffset.reduce((a, b) => a + b, 0) / p.lossPerOffset.length;
    o.onProgress?.({ ...progress, lossPerOffset: [...progress.lossPerOffset] });
  };
  const fingerprint = await baseFingerprint(model);
  const initial = snapshot(head);
  const initialVocab = head.draftVocab;
  let data: HeadData | null = null;
  try {
    const corpus = await makeCorpus(frozen, modelStopTokens(model) ?? [], o, start, clock, report);
    o.signal?.throwIfAborted(); // nothing trained yet: an abort rejects
    const corpusTokens = corpus.sequences.reduce((a, q) => a + q.ids.length, 0);
    const vocab = o.draftVocab === null ? null : frequentTokens(corpus.sequences, o.draftVocab, vocabSize);
    if (vocab !== null) head.setDraftVocab(vocab.ids);
    data = await prepareData(head, corpus.sequences, corpus.hidden, head.numHeads, o.heldOut, head.draftVocab, o.topK);
    if (data.trainRows.length === 0) fail(RangeError, FN, 'options.heldOut', 'must leave training text (every sequence was held out or too short)', o.heldOut);
    const run = await trainLoop(head, data, o, start, clock, report);
    const training = {
      trainer: FN,
      steps: run.steps,
      stoppedBy: run.stoppedBy,
      seconds: Math.round((now() - start) / 100) / 10,
      trainingSeconds: Math.round(run.trainingSeconds * 10) / 10,
      loss: run.lossPerOffset.reduce((a, b) => a + b, 0) / Math.max(1, run.lossPerOffset.length),
      lossPerOffset: run.lossPerOffset,
      heldOut: run.heldOut,
      corpusTokens,
      corpusSequences: corpus.sequences.length,
      corpusSource: o.data.kind === 'self' ? 'self-distillation' : 'given',
      ...(vocab !== null ? { draftVocab: { size: vocab.ids.length, coverage: vocab.coverage } } : {}),
      seed: o.seed,
      batchSize: o.batchSize,
      learningRate: o.learningRate,
      targets: o.targets,
      ...(o.topK > 0 ? { topK: o.topK } : {}),
      ...(o.feed !== 'truth' ? { feed: o.feed } : {}),
      backend: tf.getBackend(),
    };
    const heads = await modelDraftHeads(FN, model, fingerprint, training);
    if (!o.attach) {
      restore(head, initial);
      head.setDraftVocab(initialVocab);
    }
    return heads;
  } catch (error) {
    restore(head, initial); // a failed or rejected call leaves the model as it was
    head.setDraftVocab(initialVocab);
    throw error;
  } finally {
    tf.dispose(initial);
    if (data !== null) disposeData(data);
  }
}
