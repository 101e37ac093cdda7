/**
 * Save/load round trips through tf.io memory handlers: identical outputs (bit for bit) and
 * weights; the tied matrix stored once (embedding named 'tok_emb', which tfjs-layers camel-cases
 * as a config value); gradients reaching the tied embedding from both uses.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { MultiTokenHead, registerMtpLayers } from '../../src/index.js';
import { useCpu } from '../helpers/backend.js';
import { loadFromMemory, randomizeWeights, saveToMemory, tinyModel } from '../helpers/layers.js';

beforeAll(useCpu);

const V = 20;
const D = 16;

describe('save/load round trip', () => {
  it.each([
    { tied: true, headKind: ['lowRank', 'residual'] as const, useBias: true, activation: undefined },
    { tied: false, headKind: 'linear' as const, useBias: false, activation: undefined },
    { tied: false, headKind: ['mlp', 'residual'] as const, useBias: true, activation: 'relu' as const }, // a non-default activation must survive
  ])('tied=$tied headKind=$headKind useBias=$useBias activation=$activation: same config, outputs and weights', async ({ tied, headKind, useBias, activation }) => {
    const kinds = [...(Array.isArray(headKind) ? headKind : [headKind, headKind])];
    const { model, head } = tinyModel({ vocabSize: V, hidden: D, tied, headKind: kinds, rank: 3, headHiddenSize: 5, useBias, ...(activation ? { activation } : {}) });
    randomizeWeights(head, 11);
    const artifacts = await saveToMemory(model);
    const matrices = artifacts.weightSpecs!.filter((s) => s.shape.join() === `${V},${D}`);
    expect(matrices.map((s) => s.name).sort()).toEqual(tied ? ['tok_emb/embeddings'] : ['mtp_head/unembedding/kernel', 'tok_emb/embeddings']);
    const headConfig = JSON.stringify((artifacts.modelTopology as { config: { layers: unknown[] } }).config.layers.at(-1));
    if (tied) expect(headConfig).toContain('"tied_to":"tok_emb"');
    registerMtpLayers();
    registerMtpLayers();
    const loaded = await loadFromMemory(artifacts);
    const ids = tf.tensor2d([[1, 5, 2, 19, 0, 7]], [1, 6], 'int32');
    const a = model.predict(ids) as tf.Tensor;
    const b = loaded.predict(ids) as tf.Tensor;
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    expect(loaded.weights.map((w) => w.originalName)).toEqual(model.weights.map((w) => w.originalName));
    expect(loaded.getWeights().map((w) => Array.from(w.dataSync()))).toEqual(model.getWeights().map((w) => Array.from(w.dataSync())));
    const loadedHead = loaded.layers.at(-1) as MultiTokenHead;
    expect(loadedHead).toBeInstanceOf(MultiTokenHead);
    expect(loadedHead.getConfig()).toEqual(head.getConfig());
    expect(loadedHead.offsetHeads.map((h) => h.activation)).toEqual(head.offsetHeads.map((h) => h.activation));
    if (activation) expect(loadedHead.getConfig()['activation']).toBe(activation);
    if (tied) expect(loadedHead.unembedding.tiedLayerObject).toBe(loaded.getLayer('tok_emb'));
    tf.dispose([ids, a, b]);
    model.dispose();
    loaded.dispose();
  });
});

describe('tying', () => {
  it('one weight, two uses: gradients reach embedding rows of tokens never input', () => {
    const { model, embedding } = tinyModel({ vocabSize: V, hidden: D, tied: true });
    expect(model.trainableWeights.filter((w) => w.shape.join() === `${V},${D}`)).toHaveLength(1);
    const ids = tf.tensor2d([[1, 2, 3, 1]], [1, 4], 'int32'); // tokens 0 and 4…19 never input
    const variable = embedding.weights[0]!.read() as tf.Variable;
    const { grads } = tf.variableGrads(() => tf.tidy(() => tf.sum(tf.square(model.apply(ids) as tf.Tensor)) as tf.Scalar), [variable]);
    const rows = tf.sum(tf.abs(grads[variable.name]!), 1).arraySync() as number[]; // [V]
    expect(rows[7]).toBeGreaterThan(0); // only the unembedding use reaches row 7
    expect(rows[1]).toBeGreaterThan(0);
    tf.dispose([ids, grads[variable.name]!]);
    model.dispose();
  });
});
