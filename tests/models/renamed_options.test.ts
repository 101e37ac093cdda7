/**
 * The renamed options (issue #22) and their deprecated names, accepted until the next minor
 * release: a transformer's attention heads are `numAttentionHeads` (was `numHeads`, which
 * elsewhere means the k multi-token heads) and its MLP width `intermediateSize` (was
 * `mlpHiddenSize`, which elsewhere meant the heads' width); the heads' width is `headHiddenSize`
 * everywhere (was `mlpHiddenSize` on the layers and the loaders' options). The old names build
 * the same model, both names together must agree, and a model saved before the rename (its layer
 * configs under the old keys) loads and predicts as before.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { lightweightOffsetHead, multiTokenHead, parameterReport, sequentialMtpHead, type MultiTokenHead } from '../../src/index.js';
import { createTransformer, loadTransformer, type TransformerConfig } from '../../src/models/index.js';
import { expectThrowNoLeak } from '../helpers/leak.js';
import { expectClose, uncachedLogits, useCpu } from '../helpers/models.js';

beforeAll(useCpu);

const BASE = { vocabSize: 32, maxLength: 16, hiddenSize: 16, numLayers: 1, mtpHeads: 3, headKind: 'mlp', headHiddenSize: 8, seed: 3 } as const;

/** The model's artifacts as `model.save` writes them. */
async function save(model: ReturnType<typeof createTransformer>): Promise<tf.io.ModelArtifacts> {
  let saved: tf.io.ModelArtifacts | null = null;
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    saved = artifacts;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  return saved!;
}

/** Every weight's values, by position. */
function weightValues(model: ReturnType<typeof createTransformer>): Float32Array[] {
  return model.getWeights().map((w) => w.dataSync() as Float32Array);
}

describe('TransformerConfig: numAttentionHeads and intermediateSize', () => {
  it('the deprecated numHeads / mlpHiddenSize build exactly the model the new names build', () => {
    const current = createTransformer({ ...BASE, numAttentionHeads: 2, intermediateSize: 24 });
    const old = createTransformer({ ...BASE, numHeads: 2, mlpHiddenSize: 24 } as TransformerConfig);
    const both = createTransformer({ ...BASE, numHeads: 2, numAttentionHeads: 2, mlpHiddenSize: 24, intermediateSize: 24 } as TransformerConfig);
    const expected = weightValues(current);
    for (const model of [old, both]) {
      expect(model.getWeights().map((w) => w.shape)).toEqual(current.getWeights().map((w) => w.shape));
      weightValues(model).forEach((values, i) => expect(values).toEqual(expected[i]));
    }
    expect(current.getWeights().some((w) => w.shape.includes(24))).toBe(true); // the MLP width took
    for (const m of [current, old, both]) m.dispose();
  });

  it.each([
    ['numHeads ≠ numAttentionHeads', { numHeads: 2, numAttentionHeads: 4 }, 'createTransformer: config.numHeads is the deprecated name of config.numAttentionHeads (4) and must equal it or be omitted, but got 2.'],
    ['mlpHiddenSize ≠ intermediateSize', { mlpHiddenSize: 24, intermediateSize: 32 }, 'createTransformer: config.mlpHiddenSize is the deprecated name of config.intermediateSize (32) and must equal it or be omitted, but got 24.'],
    ['a bad value under the old name names the old name', { mlpHiddenSize: 0 }, 'createTransformer: config.mlpHiddenSize must be a positive integer at most 4194304, but got 0.'],
  ])('%s: refused before anything is built', async (_, config, message) => {
    await expectThrowNoLeak(() => createTransformer({ ...BASE, ...config } as TransformerConfig), message);
  });
});

describe('the heads’ width: headHiddenSize everywhere', () => {
  it('MultiTokenHead, LightweightOffsetHead and parameterReport take mlpHiddenSize as the old name', () => {
    const head = multiTokenHead({ numHeads: 3, vocabSize: 32, headKind: 'mlp', mlpHiddenSize: 8 });
    expect(head.offsetHeads[1]!.headHiddenSize).toBe(8);
    expect(head.offsetHeads[1]!.mlpHiddenSize).toBe(8); // the deprecated getter
    expect(lightweightOffsetHead({ kind: 'mlp', mlpHiddenSize: 5 }).headHiddenSize).toBe(5);
    const report = (args: object) => parameterReport({ vocabSize: 32, hiddenSize: 16, numHeads: 3, headKind: 'mlp', ...args });
    expect(report({ mlpHiddenSize: 8 })).toEqual(report({ headHiddenSize: 8 }));
    expect(() => multiTokenHead({ numHeads: 3, vocabSize: 32, headKind: 'mlp', headHiddenSize: 8, mlpHiddenSize: 9 })).toThrow(
      'MultiTokenHead: mlpHiddenSize is the deprecated name of headHiddenSize (8) and must equal it or be omitted, but got 9.',
    );
  });

  it('SequentialMtpHead takes mlpHiddenSize as the old name', () => {
    const embedding = { name: 'embed' }; // resolved when applied; construction only reads sizes
    const head = sequentialMtpHead({ numHeads: 3, vocabSize: 32, mlpHiddenSize: 8, tiedTo: embedding.name });
    expect([head.headHiddenSize, head.mlpHiddenSize]).toEqual([8, 8]);
    expect(() => sequentialMtpHead({ numHeads: 3, vocabSize: 32, tiedTo: 'embed' })).toThrow('SequentialMtpHead: headHiddenSize must be a positive integer at most 65536, but got undefined.');
  });

  it('layer configs are saved under headHiddenSize', async () => {
    const model = createTransformer({ ...BASE, numAttentionHeads: 2 });
    const text = JSON.stringify((await save(model)).modelTopology);
    expect(text).toContain('"head_hidden_size":8');
    expect(text.match(/"mlp_hidden_size":\d+/g)).toEqual(['"mlp_hidden_size":64']); // the trunk's own MLP width (its layer's internal key: mlpRatio · hiddenSize), once
    model.dispose();
  });
});

describe('a model saved before the renames', () => {
  it('loads and predicts as before: its heads’ configs under mlp_hidden_size', async () => {
    const model = createTransformer({ ...BASE, numAttentionHeads: 2 });
    const artifacts = await save(model);
    // What the layers wrote before the rename: the heads' width under mlpHiddenSize (snake_case on disk).
    const before = JSON.parse(JSON.stringify(artifacts.modelTopology).replaceAll('"head_hidden_size"', '"mlp_hidden_size"')) as object;
    expect(JSON.stringify(before)).not.toContain('head_hidden_size');
    const loaded = await loadTransformer(tf.io.fromMemory({ ...artifacts, modelTopology: before }));
    const head = loaded.getLayer('mtp_head') as unknown as MultiTokenHead;
    expect(head.offsetHeads[1]!.headHiddenSize).toBe(8);
    const ids = [3, 1, 4, 1, 5];
    const [a, b] = [uncachedLogits(model, ids), uncachedLogits(loaded, ids)];
    expectClose(a, b, 1e-6);
    tf.dispose([a, b]);
    model.dispose();
    loaded.dispose();
  });
});
