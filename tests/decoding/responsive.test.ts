/**
 * A decode yields to the event loop between steps: a timer that aborts a 2,000-token decode
 * runs during the decode (not after it), and the decode stops within 50 ms of the timer firing —
 * for every decoder and every stream form, on cpu and on wasm, with a real model (a KV-cached
 * transformer whose forward is real work). Without the yield, `await data()` resolves as a
 * microtask on both backends and the timer would run only after the decode had finished.
 *
 * The structural claim is exact: at most one model forward starts after the timer fired (the
 * abort is seen at the next step boundary). The 50 ms wall-clock bound also depends on the
 * machine: on a loaded shared runner a process can lose the CPU for longer, so that one
 * assertion gets two retries (without the yield every attempt fails: the timer never runs).
 */
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  blockwiseDecode,
  blockwiseStream,
  greedyDecode,
  greedyStream,
  speculativeDecode,
  speculativeStream,
  type DecodeOptions,
  type DecodeResult,
  type MultiTokenModel,
  type TokenChunk,
} from '../../src/decoding/index.js';
import { CachedTransformer } from '../../src/models/index.js';
import { tinyTransformer } from '../helpers/models.js';
import '@tensorflow/tfjs-backend-cpu';
import { expectNoLeak } from '../helpers/leak.js';

const TOKENS = 2000;
const TIMER_MS = 60;
const LATENCY_MS = 50;

type Run = (model: MultiTokenModel, options: DecodeOptions) => Promise<unknown>;
const viaStream = (stream: (m: MultiTokenModel, p: number[], o: DecodeOptions) => AsyncGenerator<TokenChunk, DecodeResult>): Run => async (m, o) => {
  for await (const chunk of stream(m, [1, 2, 3], o)) void chunk;
};
const runs: [string, Run][] = [
  ['greedyDecode', (m, o) => greedyDecode(m, [1, 2, 3], o)],
  ['greedyDecode (sampling)', (m, o) => greedyDecode(m, [1, 2, 3], { ...o, temperature: 1, seed: 1 })],
  ['blockwiseDecode', (m, o) => blockwiseDecode(m, [1, 2, 3], o)],
  ['speculativeDecode (greedy)', (m, o) => speculativeDecode(m, [1, 2, 3], o)],
  ['speculativeDecode (sampling)', (m, o) => speculativeDecode(m, [1, 2, 3], { ...o, acceptance: 'sampling', seed: 1 })],
  ['speculativeDecode (typical)', (m, o) => speculativeDecode(m, [1, 2, 3], { ...o, acceptance: 'typical', seed: 1 })],
  ['greedyStream', viaStream(greedyStream)],
  ['blockwiseStream', viaStream(blockwiseStream)],
  ['speculativeStream', viaStream(speculativeStream)],
];

describe.each(['cpu', 'wasm'])('on %s', (backend) => {
  let layers: LayersModel;
  let model: CachedTransformer;
  beforeAll(async () => {
    await tf.setBackend(backend);
    await tf.ready();
    expect(tf.getBackend()).toBe(backend);
    layers = tinyTransformer({ mtpHeads: 3, maxLength: TOKENS + 8, seed: 3 });
    model = new CachedTransformer(layers);
  });
  afterAll(() => {
    model.dispose();
    layers.dispose();
  });

  /** The model, recording when each forward starts. */
  const timed = (starts: number[]): MultiTokenModel => ({
    numHeads: model.numHeads,
    vocabSize: model.vocabSize,
    maxLength: model.maxLength,
    get length() {
      return model.length;
    },
    forward(ids) {
      starts.push(performance.now());
      return model.forward(ids);
    },
    headLogits: (states, offsets) => model.headLogits(states, offsets),
    truncate: (length) => model.truncate(length),
  });

  it.each(runs)('%s: a timer-fired abort stops a 2,000-token decode within 50 ms', { retry: 2 }, async (_, run) => {
    const starts: number[] = [];
    const controller = new AbortController();
    let tokens = 0;
    let firedAt = NaN;
    const timer = setTimeout(() => {
      firedAt = performance.now();
      controller.abort();
    }, TIMER_MS);
    const error = await expectNoLeak(() =>
      run(timed(starts), { maxNewTokens: TOKENS, signal: controller.signal, onToken: (c) => void (tokens += c.tokens.length) }).then(
        () => null,
        (e: unknown) => e,
      ),
    );
    const endedAt = performance.now();
    clearTimeout(timer);
    expect(firedAt, 'the timer ran during the decode').not.toBeNaN();
    expect((error as Error | null)?.name).toBe('AbortError');
    expect(starts.filter((t) => t > firedAt).length).toBeLessThanOrEqual(1);
    expect(endedAt - firedAt).toBeLessThan(LATENCY_MS);
    expect(tokens).toBeGreaterThan(0);
    expect(tokens).toBeLessThan(TOKENS);
    expect(model.length).toBe(0);
  });
});
