/**
 * Golden test: the committed checkpoint (fixtures/tslib-k4), greedy-decoding a fixed held-out
 * prompt on the cpu backend, gives the continuation stored here. After retraining, run the test,
 * review the received text in the failure message, and paste it here.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode } from '../../src/index.js';
import { CachedTransformer } from '../../src/models/index.js';
import { decodeBytes, encodeBytes } from '../../src/models/tokenizer.js';
import { loadCheckpoint } from '../../tools/checkpoint.js';
import { useCpu } from '../helpers/models.js';

beforeAll(useCpu);

// from lib.es2015.collection.d.ts, a held-out file (see fixtures/tslib-k4/training.json)
const PROMPT = 'interface Map<K, V> {\n    clear(): void;\n    /**';
const EXPECTED = ' [MDN Reference](https://developer.mozilla.org/d'; // the model's habit: 60% of its corpus is lib.dom.d.ts

describe('committed checkpoint', () => {
  it('greedy-decodes the held-out prompt to the stored continuation; speculative decoding agrees', async () => {
    const layersModel = await loadCheckpoint(new URL('../../fixtures/tslib-k4/', import.meta.url).pathname);
    const model = new CachedTransformer(layersModel);
    const before = tf.memory().numTensors;
    const greedy = await greedyDecode(model, encodeBytes(PROMPT), { maxNewTokens: 48 });
    expect(decodeBytes(greedy.tokens)).toBe(EXPECTED);
    const spec = await speculativeDecode(model, encodeBytes(PROMPT), { maxNewTokens: 48 });
    expect(spec.tokens).toEqual(greedy.tokens);
    expect(spec.stats.forwards).toBeLessThan(greedy.stats.forwards);
    model.truncate(0);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
    layersModel.dispose();
  });
});
