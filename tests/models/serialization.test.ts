/** The transformer serializes like any tfjs-layers model: save → load gives identical outputs. */
import * as tf from '@tensorflow/tfjs-core';
import { loadLayersModel } from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { CachedTransformer, loadTransformer } from '../../src/models/index.js';
import { registerModelLayers } from '../../src/models/transformer.js';
import { type TransformerTrunk } from '../../src/models/trunk.js';
import { expectClose, tinyTransformer, uncachedLogits, useCpu } from '../helpers/models.js';

beforeAll(useCpu);

describe('save / load', () => {
  it('round-trips through tf.io memory handlers with identical outputs, cached and uncached', async () => {
    const model = tinyTransformer();
    let saved: tf.io.ModelArtifacts | null = null;
    await model.save(tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
    registerModelLayers(); // idempotent
    registerModelLayers();
    const loaded = await loadLayersModel(tf.io.fromMemory(saved!));
    const ids = [5, 1, 30, 2, 2, 17];
    const [a, b] = [uncachedLogits(model, ids), uncachedLogits(loaded, ids)];
    expect(a.shape).toEqual([6, 3, 32]);
    expectClose(a, b, 1e-6);
    const cached = new CachedTransformer(loaded);
    const states = cached.forward(ids);
    const c = cached.headLogits(states, [0, 1, 2]);
    expectClose(a, c);
    expect(loaded.layers.map((l) => l.getClassName())).toEqual(model.layers.map((l) => l.getClassName()));
    tf.dispose([a, b, c, states]);
    cached.dispose();
    model.dispose();
    loaded.dispose();
  });

  it.each([
    ['a Llama-style model (rmsNorm, halfSplit rotary, swiglu, GQA, untied)', {}],
    [
      'Hugging Face extras (head_dim, q/k/v biases, MLP biases, llama3 RoPE scaling)',
      { headDim: 6, attentionBias: 'qkv', mlpBias: true, ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxLength: 16 } },
    ],
  ] as const)('round-trips %s: config strings and objects survive the snake/camel conversion', async (_, extra) => {
    const model = tinyTransformer({ norm: 'rmsNorm', positions: 'rotary', ropeLayout: 'halfSplit', ropeTheta: 500000, mlp: 'swiglu', numAttentionHeads: 4, numKeyValueHeads: 2, useBias: false, tiedEmbeddings: false, normEpsilon: 1e-6, ...extra });
    let saved: tf.io.ModelArtifacts | null = null;
    await model.save(tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
    const loaded = await loadTransformer(tf.io.fromMemory(saved!));
    const [a, b] = [model, loaded].map((m) => (m.getLayer('transformer') as TransformerTrunk).arch);
    expect(b).toEqual(a);
    const ids = [5, 1, 30, 2, 2, 17];
    const [x, y] = [uncachedLogits(model, ids), uncachedLogits(loaded, ids)];
    expectClose(x, y, 1e-6);
    tf.dispose([x, y]);
    model.dispose();
    loaded.dispose();
  });
});
