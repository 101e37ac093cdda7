/** Memory and guards: no tensor left behind by long decodes or by errors; every bad input named. */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode } from '../../src/index.js';
import { CachedTransformer, createTransformer } from '../../src/models/index.js';
import { decodeBytes, encodeBytes } from '../../src/models/tokenizer.js';
import { tinyTransformer, useCpu } from '../helpers/models.js';

beforeAll(useCpu);

describe('CachedTransformer memory', () => {
  it('holds a constant number of tensors across a 500-token decode (greedy and speculative)', async () => {
    const model = tinyTransformer({ maxLength: 520, numLayers: 1 });
    const cached = new CachedTransformer(model);
    const before = tf.memory().numTensors;
    const counts: number[] = [];
    const onToken = () => void counts.push(tf.memory().numTensors);
    const greedy = await greedyDecode(cached, [1, 2, 3], { maxNewTokens: 500, onToken });
    expect(greedy.tokens).toHaveLength(500);
    const spec = await speculativeDecode(cached, [1, 2, 3], { maxNewTokens: 500, onToken });
    expect(spec.tokens).toEqual(greedy.tokens);
    cached.truncate(0);
    expect(tf.memory().numTensors).toBe(before);
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(4); // only the cache's own, bounded
    cached.dispose();
    model.dispose();
  });

  it('leaves no tensor behind after a context overflow or a bad token id', () => {
    const model = tinyTransformer();
    const cached = new CachedTransformer(model);
    tf.dispose(cached.forward([1, 2, 3]));
    const before = tf.memory().numTensors;
    expect(() => cached.forward(new Array<number>(22).fill(1))).toThrow(
      'CachedTransformer.forward: tokenIds must fit the context (length 3 + 22 new ≤ maxLength = 24), but got 22 tokens.',
    );
    expect(() => cached.forward([1, 32])).toThrow('CachedTransformer.forward: tokenIds[1] must be an integer in [0, vocabSize = 32), but got 32.');
    expect(() => cached.forward([0.5])).toThrow('CachedTransformer.forward: tokenIds[0] must be an integer in [0, vocabSize = 32), but got 0.5.');
    expect(() => cached.forward([])).toThrow('CachedTransformer.forward: tokenIds must be a non-empty array (or typed array) of token ids, but got [].');
    expect(() => cached.truncate(4)).toThrow('CachedTransformer.truncate: length must be an integer in [0, length = 3], but got 4.');
    expect(() => cached.truncate(-1)).toThrow('CachedTransformer.truncate: length must be an integer in [0, length = 3], but got -1.');
    expect(cached.length).toBe(3);
    expect(tf.memory().numTensors).toBe(before);
    cached.dispose();
    model.dispose();
  });

  it('dispose frees the cache, keeps the model, and later calls say so', () => {
    const model = tinyTransformer();
    const before = tf.memory().numTensors;
    const cached = new CachedTransformer(model);
    tf.dispose(cached.forward([1, 2, 3]));
    cached.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(() => cached.forward([1])).toThrow('CachedTransformer.forward: this model was disposed; create a new CachedTransformer.');
    expect(() => cached.truncate(0)).toThrow('CachedTransformer.truncate: this model was disposed; create a new CachedTransformer.');
    model.dispose();
  });
});

describe('guards', () => {
  const cases: [string, object, string][] = [
    ['vocabSize 0', { vocabSize: 0 }, 'createTransformer: config.vocabSize must be a positive integer at most 1048576, but got 0.'],
    ['hiddenSize 12.5', { hiddenSize: 12.5 }, 'createTransformer: config.hiddenSize must be a positive integer at most 65536, but got 12.5.'],
    ['maxLength -1', { maxLength: -1 }, 'createTransformer: config.maxLength must be a positive integer at most 1048576, but got -1.'],
    ['numLayers "2"', { numLayers: '2' }, 'createTransformer: config.numLayers must be a positive integer at most 1024, but got "2".'],
    ['numAttentionHeads 3 with hiddenSize 16', { hiddenSize: 16, numAttentionHeads: 3 }, 'createTransformer: config.hiddenSize must be divisible by config.numAttentionHeads = 3, but got 16.'],
    ['mlpRatio 0', { mlpRatio: 0 }, 'createTransformer: config.mlpRatio must be a positive integer at most 64, but got 0.'],
    ['mtpHeads 0', { mtpHeads: 0 }, 'createTransformer: config.mtpHeads must be a positive integer at most 64, but got 0.'],
    ['headKind "conv"', { headKind: 'conv' }, `createTransformer: config.headKind must be one of "identity", "linear", "residual", "lowRank", "mlp", but got "conv".`],
    ['rank 0', { headKind: 'lowRank', rank: 0 }, 'createTransformer: config.rank must be a positive integer at most 128, but got 0.'],
    ['seed 0.5', { seed: 0.5 }, 'createTransformer: config.seed must be an integer in [-2147483648, 2147483647], but got 0.5.'],
    ['an unknown option', { hidden: 64 }, 'createTransformer: config.hidden is not an option'],
  ];
  for (const [title, config, message] of cases) {
    it(`createTransformer rejects ${title}`, () => {
      const before = tf.memory().numTensors;
      expect(() => createTransformer(config)).toThrow(message);
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  it('CachedTransformer rejects a model that createTransformer did not build', async () => {
    const { sequential, layers } = await import('@tensorflow/tfjs-layers');
    const other = sequential({ layers: [layers.dense({ units: 2, inputShape: [2] })], name: 'other' });
    expect(() => new CachedTransformer(other)).toThrow(
      "CachedTransformer: model must come from createTransformer (a MtpTransformerTrunk layer and a MultiTokenHead), but model 'other' has layers [Dense].",
    );
    other.dispose();
  });

  it('the byte tokenizer round-trips text and names a bad id', () => {
    const text = 'interface Map<K, V> { /** Größe */ readonly size: number; }';
    expect(decodeBytes(encodeBytes(text))).toBe(text);
    expect(encodeBytes('ß')).toEqual([0xc3, 0x9f]);
    expect(() => decodeBytes([65, 256])).toThrow('decodeBytes: tokens[1] must be an integer in [0, 256), but got 256.');
  });
});
