/**
 * Callbacks and streams: `onToken` is awaited (backpressure) and its failure is the decode's
 * failure; cleanup that throws still releases the model and keeps the first error; a stream left
 * paused is taken over by the next decode on its model; every consumer gets its own chunk.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode, speculativeStream, type TokenChunk } from '../../src/decoding/index.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak } from '../helpers/leak.js';
import { ToyAttentionModel } from '../helpers/toy_models.js';
import { CachedTransformer } from '../../src/models/index.js';
import { tinyTransformer } from '../helpers/models.js';

beforeAll(useCpu);

let model: ToyAttentionModel;
beforeAll(() => {
  model = new ToyAttentionModel({ vocabSize: 29, hidden: 16, numHeads: 4, seed: 5, headNoise: 0.1 });
});
afterAll(() => model.dispose());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('onToken', () => {
  it('an async onToken is awaited before the next step (backpressure), one call at a time', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let finished = 0;
    const chunks: TokenChunk[] = [];
    const r = await speculativeDecode(model, [1, 2], {
      maxNewTokens: 12,
      onToken: async (chunk) => {
        maxInFlight = Math.max(maxInFlight, ++inFlight);
        await sleep(3);
        chunks.push(chunk);
        inFlight--;
        finished++;
      },
    });
    expect(finished).toBe(r.stats.forwards); // every callback finished before the decode resolved
    expect(maxInFlight).toBe(1);
    expect(chunks.flatMap((c) => c.tokens)).toEqual(r.tokens);
  });

  it('a rejecting onToken rejects the decode with its error, frees everything and releases the model', async () => {
    let calls = 0;
    await expectNoLeak(async () => {
      await expect(
        speculativeDecode(model, [1, 2], {
          maxNewTokens: 30,
          acceptance: 'sampling',
          seed: 4,
          onToken: async () => {
            await sleep(1);
            if (++calls === 2) throw new Error('async boom');
          },
        }),
      ).rejects.toThrow('async boom');
    });
    expect(calls).toBe(2); // no step ran after the rejection
    expect(model.length).toBe(0);
    await expect(greedyDecode(model, [1], { maxNewTokens: 2 })).resolves.toMatchObject({ tokens: [expect.any(Number), expect.any(Number)] });
  });

  it('onToken and the stream consumer each get their own chunk: mutating one changes neither the other nor the result', async () => {
    const seenByCallback: number[][] = [];
    const seenByConsumer: number[][] = [];
    const stream = speculativeStream(model, [3, 4], {
      maxNewTokens: 10,
      onToken: (chunk) => {
        seenByCallback.push(chunk.tokens.slice());
        chunk.tokens.push(999);
        chunk.sources.length = 0;
      },
    });
    let result;
    for (;;) {
      const next = await stream.next();
      if (next.done) {
        result = next.value;
        break;
      }
      seenByConsumer.push(next.value.tokens.slice());
      expect(next.value.sources).toHaveLength(next.value.tokens.length);
      next.value.tokens.length = 0; // the consumer's copy is its own too
    }
    expect(seenByConsumer).toEqual(seenByCallback);
    expect(seenByConsumer.flat()).toEqual(result.tokens);
    expect(result.tokens).toHaveLength(10);
    expect(result.tokens).not.toContain(999);
  });
});

/** Wraps the toy model; `forward` throws at its `failAt`-th call and `truncate` throws when asked. */
function brittle(inner: ToyAttentionModel, options: { failAt?: number; truncateThrows: () => boolean }) {
  let forwards = 0;
  return {
    numHeads: inner.numHeads,
    vocabSize: inner.vocabSize,
    maxLength: inner.maxLength,
    get length() {
      return inner.length;
    },
    forward(ids: readonly number[]) {
      if (++forwards === options.failAt) throw new Error('forward failed');
      return inner.forward(ids);
    },
    headLogits: (states: tf.Tensor2D, offsets: readonly number[]) => inner.headLogits(states, offsets),
    truncate(length: number) {
      if (options.truncateThrows()) throw new Error('truncate failed');
      inner.truncate(length);
    },
  };
}

describe('cleanup that throws', () => {
  it('keeps the first error (the cleanup error as its cause) and releases the model', async () => {
    let broken = false;
    const m = brittle(model, { failAt: 3, truncateThrows: () => broken });
    const error = await speculativeDecode(m, [1, 2], {
      maxNewTokens: 30,
      onToken: (c) => {
        if (c.step === 1) broken = true; // cleanup will fail after forward 3 fails
      },
    }).catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toBe('forward failed');
    expect(((error as Error).cause as Error).message).toBe('truncate failed');
    broken = false;
    model.truncate(0); // the toy model's own cache is fine
    // the lock was released: the next decode runs instead of "already being decoded"
    await expect(greedyDecode(m, [1], { maxNewTokens: 2 })).resolves.toBeDefined();
  });

  it('a model whose truncate always throws reports that error on every call, never "already being decoded"', async () => {
    const m = brittle(model, { truncateThrows: () => true });
    await expect(greedyDecode(m, [1], { maxNewTokens: 2 })).rejects.toThrow('truncate failed');
    await expect(greedyDecode(m, [1], { maxNewTokens: 2 })).rejects.toThrow('truncate failed');
  });

  it('a disposed CachedTransformer answers every decode with its own error, never "already being decoded"', async () => {
    const layers = tinyTransformer();
    const disposed = new CachedTransformer(layers);
    disposed.dispose();
    for (let i = 0; i < 2; i++) {
      const error = (await greedyDecode(disposed, [1], { maxNewTokens: 2 }).catch((e: unknown) => e)) as Error;
      expect(error.message).toMatch(/^CachedTransformer\.\w+: .*disposed/);
    }
    layers.dispose();
  });

  it('an error that already has a cause is kept with the cleanup error in an AggregateError', async () => {
    const m = brittle(model, { truncateThrows: () => calls > 0 });
    let calls = 0;
    const first = new Error('onToken failed', { cause: 'its own cause' });
    const error = await greedyDecode(m, [1], {
      maxNewTokens: 5,
      onToken: () => {
        calls++;
        throw first;
      },
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AggregateError);
    expect((error as AggregateError).message).toBe('greedyDecode: decoding failed, and cleaning up after it failed too (errors[0], then errors[1]).');
    expect((error as AggregateError).errors[0]).toBe(first);
    expect(((error as AggregateError).errors[1] as Error).message).toBe('truncate failed');
    model.truncate(0);
  });
});

describe('a stream left paused (never finished, never returned)', () => {
  it('is taken over by the next decode on its model: its tensors are freed, its next step says why', async () => {
    const before = tf.memory().numTensors;
    const abandoned = speculativeStream(model, [5, 6], { maxNewTokens: 100, acceptance: 'sampling', seed: 2 });
    await abandoned.next();
    await abandoned.next(); // paused, holding the model, its cache and the drafts' distributions
    expect(tf.memory().numTensors).toBeGreaterThan(before);
    const r = await greedyDecode(model, [1, 2], { maxNewTokens: 5 });
    expect(r.tokens).toHaveLength(5);
    expect(tf.memory().numTensors).toBe(before);
    await expect(abandoned.next()).rejects.toThrow(
      'speculativeStream: this stream was left paused and a later greedyDecode call took its model over (freeing its state). ' +
        'Finish a stream, or call its return() (a for await loop\'s break does), before starting another decode on the same model.',
    );
    await expect(abandoned.return(undefined as never)).resolves.toMatchObject({ done: true });
    expect(tf.memory().numTensors).toBe(before);
    expect(model.length).toBe(0);
  });

});
