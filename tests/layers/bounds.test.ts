/**
 * Configs that would crash the process fail fast instead (issue #9 §2): every size field of the
 * three layers and of parameterReport is bounded by SIZE_LIMITS and checked before any weight is
 * allocated; wrong types are rejected naming the field, also when they come from a model.json;
 * a loaded MultiTokenHead runs no real initializer on weights about to be overwritten. Each case
 * asserts the message, that it fails in under a second, and that no tensor is left behind. A
 * fast-check property throws random malformed configs at the layers and checks that none
 * allocates more than a few MB before failing.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import fc from 'fast-check';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { lightweightOffsetHead, multiTokenHead, type MultiTokenHeadArgs, parameterReport, registerMtpLayers, sharedUnembedding } from '../../src/index.js';
import { useCpu } from '../helpers/backend.js';
import { loadFromMemory, saveToMemory, tinyModel } from '../helpers/layers.js';
import { expectThrowNoLeak, peakBytesDuring } from '../helpers/leak.js';

beforeAll(useCpu);
afterEach(() => vi.restoreAllMocks());

/** Asserts `fn` fails with `message` within a second, leaving no tensor behind. */
async function failsFast(fn: () => unknown, message: string): Promise<void> {
  const start = performance.now();
  await expectThrowNoLeak(fn, message);
  expect(performance.now() - start).toBeLessThan(1000);
}

const HEAD = 'MultiTokenHead';
const BIG = 'a positive integer at most';

describe('size fields are bounded before anything is allocated', () => {
  it.each([
    ['numHeads 1e9', () => multiTokenHead({ numHeads: 1e9, vocabSize: 16 }), `${HEAD}: numHeads must be ${BIG} 64, but got 1000000000.`],
    ['numHeads 2**32 + 1', () => multiTokenHead({ numHeads: 2 ** 32 + 1, vocabSize: 16 }), `${HEAD}: numHeads must be ${BIG} 64, but got 4294967297.`],
    ['vocabSize 4e8', () => multiTokenHead({ numHeads: 2, vocabSize: 4e8 }), `${HEAD}: vocabSize must be ${BIG} 1048576, but got 400000000.`],
    ['rank 1e9', () => multiTokenHead({ numHeads: 2, vocabSize: 16, headKind: 'lowRank', rank: 1e9 }), `${HEAD}: rank must be ${BIG} 65536, but got 1000000000.`],
    ['mlpHiddenSize 1e9', () => lightweightOffsetHead({ kind: 'mlp', mlpHiddenSize: 1e9 }), `LightweightOffsetHead: mlpHiddenSize must be ${BIG} 65536, but got 1000000000.`],
    ['unembedding vocabSize 2**32 + 1', () => sharedUnembedding({ vocabSize: 2 ** 32 + 1 }), `SharedUnembedding: vocabSize must be ${BIG} 1048576, but got 4294967297.`],
    ['parameterReport numHeads 1e9', () => parameterReport({ vocabSize: 16, hiddenSize: 8, numHeads: 1e9 }), `parameterReport: numHeads must be ${BIG} 64, but got 1000000000.`],
    ['parameterReport numHeads 2**32 + 1', () => parameterReport({ vocabSize: 16, hiddenSize: 8, numHeads: 2 ** 32 + 1 }), `parameterReport: numHeads must be ${BIG} 64, but got 4294967297.`],
    ['parameterReport hiddenSize 1e9', () => parameterReport({ vocabSize: 16, hiddenSize: 1e9, numHeads: 2 }), `parameterReport: hiddenSize must be ${BIG} 65536, but got 1000000000.`],
  ])('%s', (_, fn, message) => failsFast(fn, message));

  it('weights too large for the input hidden size fail at build, before any weight', async () => {
    const wide = tfl.input({ shape: [null, 4096] }); // symbolic: no data allocated
    await failsFast(() => sharedUnembedding({ vocabSize: 2 ** 20 }).apply(wide), 'SharedUnembedding: the unembedding kernel [1048576, 4096] must have at most 2147483648 elements, but got 4294967296.');
    const huge = tfl.input({ shape: [null, 65536] });
    // The head's unembedding alone would fit; the mlp offsets are checked first, so nothing is built.
    await failsFast(() => multiTokenHead({ numHeads: 2, vocabSize: 8, headKind: 'mlp', mlpHiddenSize: 65536 }).apply(huge), `${HEAD}: w1 [65536, 65536] must have at most 2147483648 elements, but got 4294967296.`);
    await failsFast(() => lightweightOffsetHead({ kind: 'residual' }).apply(tfl.input({ shape: [null, 70000] })), `LightweightOffsetHead: the input hidden size must be ${BIG} 65536, but got 70000.`);
  });
});

describe('wrong types are rejected naming the field', () => {
  it.each([
    ['useBias "yes"', () => multiTokenHead({ numHeads: 2, vocabSize: 8, useBias: 'yes' as unknown as boolean }), `${HEAD}: useBias must be a boolean, but got "yes".`],
    ['unembedding useBias 1', () => sharedUnembedding({ vocabSize: 8, useBias: 1 as unknown as boolean }), 'SharedUnembedding: useBias must be a boolean, but got 1.'],
    ['rank -5 on residual heads', () => multiTokenHead({ numHeads: 2, vocabSize: 8, rank: -5 }), `${HEAD}: rank must be ${BIG} 65536, but got -5.`],
    ['rank "4" on a linear head', () => lightweightOffsetHead({ kind: 'linear', rank: '4' as unknown as number }), `LightweightOffsetHead: rank must be ${BIG} 65536, but got "4".`],
    ['numHeads "3"', () => multiTokenHead({ numHeads: '3' as unknown as number, vocabSize: 8 }), `${HEAD}: numHeads must be ${BIG} 64, but got "3".`],
    ['activation 5', () => multiTokenHead({ numHeads: 2, vocabSize: 8, activation: 5 as unknown as 'relu' }), `${HEAD}: activation must be a tfjs-layers activation name, but got 5.`],
  ])('%s', (_, fn, message) => failsFast(fn, message));

  it('a valid rank on heads that do not use it is dropped, not saved', () => {
    const head = multiTokenHead({ numHeads: 2, vocabSize: 8, rank: 4 });
    expect(head.getConfig()).not.toHaveProperty('rank');
  });
});

/** A saved model whose head config is edited by `edit` (snake_case keys, as in a model.json). */
async function editedArtifacts(edit: (config: Record<string, unknown>) => void, args: Partial<MultiTokenHeadArgs> = {}): Promise<tf.io.ModelArtifacts> {
  const { model } = tinyModel({ vocabSize: 12, hidden: 8, ...args });
  const artifacts = await saveToMemory(model);
  model.dispose();
  const layers = (artifacts.modelTopology as { config: { layers: { class_name: string; config: Record<string, unknown> }[] } }).config.layers;
  edit(layers.find((l) => l.class_name === 'MultiTokenHead')!.config);
  return artifacts;
}

describe('a crafted model.json fails fast', () => {
  it.each([
    ['num_heads 1e9', (c: Record<string, unknown>) => (c['num_heads'] = 1e9), `${HEAD}: numHeads must be ${BIG} 64, but got 1000000000.`],
    ['num_heads 2**32 + 1', (c: Record<string, unknown>) => (c['num_heads'] = 2 ** 32 + 1), `${HEAD}: numHeads must be ${BIG} 64, but got 4294967297.`],
    ['untied vocab_size 4e8 with weights present', (c: Record<string, unknown>) => (c['vocab_size'] = 4e8), `${HEAD}: vocabSize must be ${BIG} 1048576, but got 400000000.`],
    ['use_bias "yes"', (c: Record<string, unknown>) => (c['use_bias'] = 'yes'), `${HEAD}: useBias must be a boolean, but got "yes".`],
    ['rank -5 on residual heads', (c: Record<string, unknown>) => (c['rank'] = -5), `${HEAD}: rank must be ${BIG} 65536, but got -5.`],
    ['mlp_hidden_size "wide"', (c: Record<string, unknown>) => ((c['head_kind'] = ['mlp', 'mlp']), (c['mlp_hidden_size'] = 'wide')), `${HEAD}: mlpHiddenSize must be ${BIG} 65536, but got "wide".`],
  ])('%s', async (_, edit, message) => {
    registerMtpLayers();
    const artifacts = await editedArtifacts(edit);
    await failsFast(() => loadFromMemory(artifacts), message);
  });

  it('loading runs no real initializer on weights about to be overwritten', async () => {
    registerMtpLayers();
    const artifacts = await editedArtifacts(() => {}, { headKind: ['linear', 'lowRank', 'mlp'], numHeads: 4, rank: 2, headHiddenSize: 6 });
    // Every non-zero initializer the model uses: glorot (unembedding, lowRank A, mlp W1, trunk), identity (linear), uniform (embedding).
    const prototypes = [tfl.initializers.glorotUniform({}), tfl.initializers.identity({}), tfl.initializers.randomUniform({})].map((init) => {
      let proto = Object.getPrototypeOf(init) as object;
      while (!Object.prototype.hasOwnProperty.call(proto, 'apply')) proto = Object.getPrototypeOf(proto) as object;
      return proto as { apply: (...args: unknown[]) => tf.Tensor };
    });
    const spies = prototypes.map((p) => vi.spyOn(p, 'apply'));
    const loaded = await loadFromMemory(artifacts);
    expect(spies.map((s) => s.mock.calls.length)).toEqual([0, 0, 0]);
    vi.restoreAllMocks();
    // Without weights (no fast init), the same topology does run them: the spies can see a call.
    const spy = vi.spyOn(prototypes[0]!, 'apply');
    const fresh = await tfl.models.modelFromJSON({ modelTopology: artifacts.modelTopology as tf.io.ModelJSON['modelTopology'] });
    expect(spy.mock.calls.length).toBeGreaterThan(0);
    loaded.dispose();
    fresh.dispose();
  });
});

describe('property: malformed layer configs never allocate more than a few MB before failing', () => {
  const D = 8;
  const kinds = ['identity', 'linear', 'residual', 'lowRank', 'mlp'] as const;
  const malformedSize = fc.constantFrom<unknown>(0, -5, 1.5, NaN, Infinity, 1e9, 2 ** 32 + 1, '3', true, {}, [4]);
  const malformedFlag = fc.constantFrom<unknown>('yes', 0, 1, 'false', {}, []);
  const malformedKind = fc.constantFrom<unknown>('conv', 5, '', 'LOWRANK', Array.from({ length: 65 }, () => 'mlp'));
  // A valid config whose weights are large (up to 2^20 × 8 floats = 32 MB): a check that ran
  // after an allocation would show up in the peak.
  const valid = fc.record({
    numHeads: fc.integer({ min: 1, max: 64 }),
    vocabSize: fc.integer({ min: 1, max: 2 ** 20 }),
    headKind: fc.constantFrom(...kinds),
    rank: fc.integer({ min: 1, max: D }),
    mlpHiddenSize: fc.integer({ min: 1, max: 2 ** 16 }),
    useBias: fc.boolean(),
  });
  const corruption = fc.oneof(
    fc.record({ field: fc.constantFrom('numHeads', 'vocabSize', 'rank', 'mlpHiddenSize'), value: malformedSize }),
    fc.record({ field: fc.constant('useBias'), value: malformedFlag }),
    fc.record({ field: fc.constantFrom('headKind', 'offset0Kind'), value: malformedKind }),
    fc.record({ field: fc.constant('rank'), value: fc.integer({ min: D + 1, max: 2 ** 16 }) }), // valid alone, too big for D: fails at build
    fc.record({ field: fc.constant('activation'), value: fc.constantFrom<unknown>('nope', 7, 'tanhh', {}) }),
  );

  it('MultiTokenHead construct + apply, and parameterReport', () => {
    const x = tf.zeros([1, 2, D]); // [1, 2, D]
    fc.assert(
      fc.property(valid, corruption, (config, { field, value }) => {
        // A rank that only fails at build needs a lowRank head (offset 0 always exists) to be checked against D.
        const args = { ...config, ...(field === 'rank' && typeof value === 'number' && value > D ? { offset0Kind: 'lowRank' as const } : {}), [field]: value } as unknown as MultiTokenHeadArgs;
        const before = tf.memory();
        let failed = false;
        const peak = peakBytesDuring(() => {
          try {
            tf.dispose(multiTokenHead(args).apply(x) as tf.Tensor);
          } catch {
            failed = true;
          }
          if (field !== 'activation') expect(() => parameterReport({ ...args, hiddenSize: D })).toThrow(); // the same config, no tensor at all
        });
        expect(failed, JSON.stringify({ field, value })).toBe(true);
        expect(peak).toBeLessThan(4 * 2 ** 20);
        expect(tf.memory().numTensors).toBe(before.numTensors);
      }),
      { numRuns: 150, seed: 9 },
    );
    x.dispose();
  });
});
