/**
 * Shared data and checks of the training tests: the corpus as [windows, 32] id tensors (train
 * and held out), per-offset held-out losses, and the documented thresholds.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { expect } from 'vitest';
import { multiTokenLoss, multiTokenTargets } from '../../src/index.js';
import { loadCorpus, unigramEntropy, windows } from './corpus.js';
import { useCpu } from './backend.js';

/** Number of offsets trained. */
export const K = 3;
/** Window length (tokens). */
export const SEQ = 32;
/** Final / initial held-out loss that every offset must get below. */
export const RATIO = 0.8;
/** Held-out windows (enough for a stable mean: 24·32 = 768 positions per offset). */
export const HELD_OUT = 24;
/** Adam learning rate of both training tests. */
export const LEARNING_RATE = 0.03;
/** Windows per Adam step. */
export const BATCH = 4;
/** Adam steps of both training tests: the seeded runs pass RATIO with a margin (docs/training.md). */
export const STEPS = 12;

/** Tensors and facts of the training corpus. */
export interface TrainingData {
  /** Training windows [600, 32] (the first 19,200 characters). */
  train: tf.Tensor2D;
  /** Held-out windows [HELD_OUT, 32] (the last characters of the 20 KB). */
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
  const trainCount = count - HELD_OUT - 1; // one window of gap between the two
  return {
    train: tf.tensor2d(ids.slice(0, trainCount * SEQ), [trainCount, SEQ], 'int32'),
    heldOut: tf.tensor2d(ids.slice((count - HELD_OUT) * SEQ), [HELD_OUT, SEQ], 'int32'),
    vocabSize: corpus.vocab.length,
    unigram: unigramEntropy(corpus),
  };
}

/** Held-out per-offset losses of `model`. */
export function heldOutLosses(model: tfl.LayersModel, data: TrainingData): number[] {
  return tf.tidy(() => {
    const logits = model.predict(data.heldOut) as tf.Tensor; // [HELD_OUT, 32, 3, V]
    return Array.from(multiTokenLoss(multiTokenTargets(data.heldOut, K), logits).perOffset.dataSync());
  });
}

/** Logs the numbers the docs quote. */
export function report(name: string, before: number[], after: number[], data: TrainingData): void {
  console.log(`${name}: held-out loss per offset ${before.map((b, j) => `${b.toFixed(3)} → ${after[j]!.toFixed(3)}`).join(', ')} (unigram entropy ${data.unigram.toFixed(3)})`);
}

/**
 * The documented threshold: every offset below `RATIO`× its initial loss. (The unigram entropy
 * is only logged: a few steps reach ~0.74× ln V, just above it.)
 */
export function expectLearned(before: number[], after: number[]): void {
  after.forEach((a, j) => expect(a, `offset ${j}`).toBeLessThan(RATIO * before[j]!));
}
