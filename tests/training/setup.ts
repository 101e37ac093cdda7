/**
 * Shared data and checks of the training tests: the corpus as [windows, 32] id tensors (train
 * and held out), per-offset held-out losses, and the documented thresholds.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { expect } from 'vitest';
import { multiTokenLoss, multiTokenTargets } from '../../src/index.js';
import { loadCorpus, unigramEntropy, windows } from '../helpers/corpus.js';
import { useCpu } from '../layers/fixtures.js';

/** Number of offsets trained. */
export const K = 3;
/** Window length (tokens). */
export const SEQ = 32;
/** Final / initial held-out loss that every offset must get below. */
export const RATIO = 0.8;

/** Tensors and facts of the training corpus. */
export interface TrainingData {
  /** Training windows [544, 32] (the first 17,408 characters). */
  train: tf.Tensor2D;
  /** Held-out windows [80, 32] (the rest of the 20 KB). */
  heldOut: tf.Tensor2D;
  /** Vocabulary size (77). */
  vocabSize: number;
  /** Unigram entropy of the corpus, nats. */
  unigram: number;
}

/** Loads the 20 KB corpus on the cpu backend. */
export async function loadTrainingData(): Promise<TrainingData> {
  await useCpu();
  const corpus = loadCorpus(20_000);
  const count = Math.floor(corpus.ids.length / SEQ); // 625
  const ids = windows(corpus, SEQ, count);
  const trainCount = count - 81;
  return {
    train: tf.tensor2d(ids.slice(0, trainCount * SEQ), [trainCount, SEQ], 'int32'),
    heldOut: tf.tensor2d(ids.slice(trainCount * SEQ), [count - trainCount, SEQ], 'int32'),
    vocabSize: corpus.vocab.length,
    unigram: unigramEntropy(corpus),
  };
}

/** Held-out per-offset losses of `model`. */
export function heldOutLosses(model: tfl.LayersModel, data: TrainingData): number[] {
  return tf.tidy(() => {
    const logits = model.predict(data.heldOut) as tf.Tensor; // [n, 32, 3, V]
    return Array.from(multiTokenLoss(multiTokenTargets(data.heldOut, K), logits).perOffset.dataSync());
  });
}

/** Logs the numbers the docs quote. */
export function report(name: string, before: number[], after: number[], data: TrainingData): void {
  console.log(`${name}: held-out loss per offset ${before.map((b, j) => `${b.toFixed(3)} → ${after[j]!.toFixed(3)}`).join(', ')} (unigram entropy ${data.unigram.toFixed(3)})`);
}

/**
 * The documented threshold: every offset below `RATIO`× its initial loss. (The unigram entropy
 * is only logged: runs are unseeded and offset 0 lands 2.9–3.2 nats, too close to 3.19 to assert.)
 */
export function expectLearned(before: number[], after: number[]): void {
  after.forEach((a, j) => expect(a, `offset ${j}`).toBeLessThan(RATIO * before[j]!));
}
