/** The transformer serializes like any tfjs-layers model: save → load gives identical outputs. */
import * as tf from '@tensorflow/tfjs-core';
import { loadLayersModel } from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { CachedTransformer, registerModelLayers } from '../../src/models/index.js';
import { expectClose, tinyTransformer, uncachedLogits, useCpu } from './helpers.js';

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
});
