/**
 * Configs and arguments that used to crash, hang or leak (issue #9 §2/§5): every size is bounded
 * and every field checked before any weight exists, so each case fails fast (< 1 s), with a
 * message naming the field, and leaves no tensor behind.
 */
import * as tf from '@tensorflow/tfjs-core';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode } from '../../src/index.js';
import { CachedTransformer, createTransformer, loadTransformer, type TransformerConfig } from '../../src/models/index.js';
import { SIZE_LIMITS } from '../../src/internal/errors.js';
import { expectThrowNoLeak } from '../helpers/leak.js';
import { tinyTransformer, useCpu } from '../helpers/models.js';

beforeAll(useCpu);

async function rejectsFast(make: () => unknown, message: string): Promise<void> {
  const started = performance.now();
  await expectThrowNoLeak(make, message);
  expect(performance.now() - started).toBeLessThan(1000);
}

describe('createTransformer checks everything before allocating', () => {
  const cases: [string, unknown, string][] = [
    ['numHeads (the deprecated name of numAttentionHeads) 1e9', { numHeads: 1e9 }, `createTransformer: config.numHeads must be a positive integer at most ${SIZE_LIMITS.attentionHeads}, but got 1000000000.`],
    ['mtpHeads 1e9', { mtpHeads: 1e9 }, `createTransformer: config.mtpHeads must be a positive integer at most ${SIZE_LIMITS.numHeads}, but got 1000000000.`],
    ['numAttentionHeads 2^32 + 1', { numAttentionHeads: 2 ** 32 + 1 }, 'createTransformer: config.numAttentionHeads must be a positive integer at most 1024, but got 4294967297.'],
    ['vocabSize 1e9', { vocabSize: 1e9 }, `createTransformer: config.vocabSize must be a positive integer at most ${SIZE_LIMITS.vocabSize}, but got 1000000000.`],
    ['maxLength 1e9', { maxLength: 1e9 }, `createTransformer: config.maxLength must be a positive integer at most ${SIZE_LIMITS.maxLength}, but got 1000000000.`],
    ['a matrix past 2^31 elements', { vocabSize: SIZE_LIMITS.vocabSize, hiddenSize: 4096, numAttentionHeads: 4 }, 'createTransformer: config.vocabSize · hiddenSize must be at most 2147483648 (one weight matrix), but got 4294967296.'],
    ['a learned position table past 2^31 elements', { maxLength: SIZE_LIMITS.maxLength, hiddenSize: 4096, numAttentionHeads: 4 }, 'createTransformer: config.maxLength · hiddenSize must be at most 2147483648 (one weight matrix), but got 4294967296.'],
    ['headKind lowRank without a rank', { headKind: 'lowRank' }, 'createTransformer: config.rank must be given for headKind "lowRank" (an integer in [1, hiddenSize]), but got undefined.'],
    ['rank 999 > hiddenSize', { headKind: 'lowRank', rank: 999 }, 'createTransformer: config.rank must be a positive integer at most 128, but got 999.'],
    ['rank on a residual head', { rank: 4 }, 'createTransformer: config.rank applies only to headKind "lowRank" (headKind is "residual"), but got 4.'],
    ['headKind mlp without a width', { headKind: 'mlp' }, 'createTransformer: config.headHiddenSize must be given for headKind "mlp" (an integer in [1, 65536]), but got undefined.'],
    ['numKeyValueHeads not dividing numAttentionHeads', { numKeyValueHeads: 3 }, 'createTransformer: config.numKeyValueHeads must divide config.numAttentionHeads = 4, but got 3.'],
    ['numKeyValueHeads > numAttentionHeads', { numKeyValueHeads: 8 }, 'createTransformer: config.numKeyValueHeads must be a positive integer at most 4, but got 8.'],
    ['an odd rotary head size', { positions: 'rotary', hiddenSize: 12, numAttentionHeads: 4 }, 'createTransformer: the head size config.hiddenSize / config.numAttentionHeads must be even for rotary positions, but got 3.'],
    ['an odd rotary headDim', { positions: 'rotary', headDim: 5 }, 'createTransformer: config.headDim must be even for rotary positions, but got 5.'],
    ['headDim 1e9', { headDim: 1e9 }, `createTransformer: config.headDim must be a positive integer at most ${SIZE_LIMITS.hiddenSize}, but got 1000000000.`],
    ['q/k/v matrices past 2^31 elements', { hiddenSize: 65536, numAttentionHeads: 1024, headDim: 64, intermediateSize: 8 }, 'createTransformer: config.hiddenSize · numAttentionHeads · headDim must be at most 2147483648 (one weight matrix), but got 4294967296.'],
    ['attentionBias true', { attentionBias: true }, 'createTransformer: config.attentionBias must be one of "none", "qkv", "qkvo", but got true.'],
    ['mlpBias "no"', { mlpBias: 'no' }, 'createTransformer: config.mlpBias must be a boolean, but got "no".'],
    ['ropeScaling on learned positions', { ropeScaling: { type: 'linear', factor: 2 } }, 'createTransformer: config.ropeScaling applies only to rotary positions (config.positions is "learned"), but got "linear".'],
    ['ropeScaling "yarn"', { positions: 'rotary', ropeScaling: { type: 'yarn', factor: 2 } }, 'createTransformer: config.ropeScaling.type must be one of "linear", "llama3", but got "yarn".'],
    ['ropeScaling with a misspelled key', { positions: 'rotary', ropeScaling: { type: 'linear', factr: 2 } }, 'createTransformer: config.ropeScaling of type "linear" may only have the keys type, factor, but got "factr".'],
    ['ropeScaling factor 0', { positions: 'rotary', ropeScaling: { type: 'linear', factor: 0 } }, 'createTransformer: config.ropeScaling.factor must be a finite number in (0, 1000000], but got 0.'],
    [
      'llama3 ropeScaling with highFreqFactor ≤ lowFreqFactor',
      { positions: 'rotary', ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 4, highFreqFactor: 4, originalMaxLength: 8192 } },
      'createTransformer: config.ropeScaling.highFreqFactor must be above lowFreqFactor (4), but got 4.',
    ],
    ['ropeScaling an array', { positions: 'rotary', ropeScaling: [] }, 'createTransformer: config.ropeScaling must be null or an object { type, factor, … }, but got [].'],
    ['norm "LayerNorm"', { norm: 'LayerNorm' }, 'createTransformer: config.norm must be one of "layerNorm", "rmsNorm", but got "LayerNorm".'],
    ['ropeLayout "rotate_half"', { ropeLayout: 'rotate_half' }, 'createTransformer: config.ropeLayout must be one of "interleaved", "halfSplit", but got "rotate_half".'],
    ['mlp "silu"', { mlp: 'silu' }, 'createTransformer: config.mlp must be one of "relu", "gelu", "swiglu", but got "silu".'],
    ['useBias "yes"', { useBias: 'yes' }, 'createTransformer: config.useBias must be a boolean, but got "yes".'],
    ['normEpsilon NaN', { normEpsilon: NaN }, 'createTransformer: config.normEpsilon must be a finite number in (0, 1], but got NaN.'],
    ['ropeTheta "10000"', { ropeTheta: '10000' }, 'createTransformer: config.ropeTheta must be a finite number in (0, 1000000000000], but got "10000".'],
    ['name 5', { name: 5 }, 'createTransformer: config.name must be a non-empty string, but got 5.'],
    ['seed "abc"', { seed: 'abc' }, 'createTransformer: config.seed must be an integer in [-2147483648, 2147483647], but got "abc".'],
    ['an own "constructor" key', { constructor: 1 }, 'createTransformer: config.constructor is not an option'],
    ['an own "toString" key', { toString: () => '' }, 'createTransformer: config.toString is not an option'],
    ['an own "hasOwnProperty" key', { hasOwnProperty: 1 }, 'createTransformer: config.hasOwnProperty is not an option'],
    ['an own "__proto__" key', JSON.parse('{"__proto__": {"hiddenSize": 8}}'), 'createTransformer: config.__proto__ is not an option'],
    ['an array', [], 'createTransformer: config must be a plain object of options, but got [].'],
    ['null', null, 'createTransformer: config must be a plain object of options, but got null.'],
  ];
  for (const [title, config, message] of cases) {
    it(`rejects ${title}`, async () => rejectsFast(() => createTransformer(config as TransformerConfig), message));
  }

  it('never allocates on random malformed configs (property)', () => {
    const bad = fc.oneof(
      fc.constantFrom(0, -1, 1.5, NaN, Infinity, 1e9, 2 ** 32 + 1, '2', null, true, [], {}),
      fc.integer({ min: -3, max: 3 }),
    );
    const small = fc.integer({ min: 1, max: 8 });
    const field = fc.constantFrom(
      'vocabSize', 'maxLength', 'hiddenSize', 'numLayers', 'numHeads', 'numKeyValueHeads', 'mlpRatio', 'mlpHiddenSize', 'mtpHeads',
      'rank', 'headHiddenSize', 'seed', 'normEpsilon', 'ropeTheta', 'norm', 'positions', 'ropeLayout', 'mlp', 'useBias', 'tiedEmbeddings', 'headKind', 'name', 'bogus',
    );
    fc.assert(
      fc.property(fc.dictionary(field, fc.oneof(bad, small), { minKeys: 1, maxKeys: 4 }), (fields) => {
        const config = { vocabSize: 8, hiddenSize: 8, numHeads: 2, numLayers: 1, maxLength: 8, mtpHeads: 2, ...fields };
        const before = tf.memory();
        let model: ReturnType<typeof createTransformer> | null = null;
        try {
          model = createTransformer(config as TransformerConfig);
        } catch (e) {
          expect((e as Error).message).toMatch(/^createTransformer: /);
          expect(tf.memory().numTensors).toBe(before.numTensors);
          expect(tf.memory().numBytes).toBe(before.numBytes);
          return;
        }
        expect(tf.memory().numBytes - before.numBytes).toBeLessThan(4 << 20); // a valid config: small by construction
        model.dispose();
      }),
      { numRuns: 150, seed: 11 },
    );
  });
});

describe('loading a crafted model.json', () => {
  it('checks the trunk config before any weight is created', async () => {
    const model = tinyTransformer();
    let saved: tf.io.ModelArtifacts | null = null;
    await model.save(tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
    model.dispose();
    const topology = JSON.parse(JSON.stringify(saved!.modelTopology)) as { config: { layers: { class_name: string; config: Record<string, unknown> }[] } };
    const trunk = topology.config.layers.find((l) => l.class_name === 'MtpTransformerTrunk')!;
    for (const [field, value, message] of [
      ['num_layers', 1e9, 'TransformerTrunk: config.numLayers must be a positive integer at most 1024, but got 1000000000.'],
      ['num_heads', 2 ** 32 + 1, 'TransformerTrunk: config.numHeads must be a positive integer at most 1024, but got 4294967297.'],
      ['norm', 'batch_norm', 'TransformerTrunk: config.norm must be one of "layerNorm", "rmsNorm", but got "batchNorm".'],
    ] as const) {
      const crafted = { ...topology, config: { ...topology.config, layers: topology.config.layers.map((l) => (l === trunk ? { ...l, config: { ...l.config, [field]: value } } : l)) } };
      await rejectsFast(() => loadTransformer(tf.io.fromMemory({ ...saved!, modelTopology: crafted })), message);
    }
  });
});

describe('CachedTransformer arguments', () => {
  it('names the argument for a missing or foreign model', async () => {
    await rejectsFast(() => new CachedTransformer(null as never), 'CachedTransformer: model must be a tf.LayersModel from createTransformer or loadTransformer, but got null.');
    await rejectsFast(() => new CachedTransformer({} as never), 'CachedTransformer: model must be a tf.LayersModel from createTransformer or loadTransformer, but got an object (Object).');
  });

  it('names a disposed LayersModel instead of failing deep inside tfjs', async () => {
    const model = tinyTransformer();
    const cached = new CachedTransformer(model);
    model.dispose();
    const message = "CachedTransformer.forward: the wrapped LayersModel 'mtp_transformer' was disposed (its weights are gone); load or create the model again.";
    await rejectsFast(() => cached.forward([1, 2]), message);
    await rejectsFast(() => greedyDecode(cached, [1, 2], { maxNewTokens: 3 }), "the wrapped LayersModel 'mtp_transformer' was disposed (its weights are gone)");
    cached.dispose();
  });

  it('rejects a learned-position forward past maxLength in the layers graph too', async () => {
    const model = tinyTransformer();
    const ids = tf.zeros([1, 30], 'int32');
    await rejectsFast(() => model.predict(ids), 'TransformerTrunk: learned positions must fit maxLength = 24, but got positions 0…29.');
    tf.dispose([ids]);
    model.dispose();
  });
});
