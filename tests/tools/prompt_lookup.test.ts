/**
 * tools/prompt_lookup.ts, the bench's no-training baseline: the n-gram lookup proposes what
 * followed the latest earlier match, and prompt-lookup decoding is exactly greedy decoding (on a
 * real cached transformer and on a model whose text repeats), one forward per step, no tensor
 * left behind, errors naming the argument.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, type MultiTokenModel } from '../../src/index.js';
import { CachedTransformer } from '../../src/models/index.js';
import { lookupDraft, promptLookupDecode } from '../../tools/prompt_lookup.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';
import { tinyTransformer } from '../helpers/models.js';

await useCpu();

/** Its next token is `CYCLE[(position of last token in CYCLE) + 1]`: greedy text cycles with period 5. Counts forwards. */
class CyclingModel implements MultiTokenModel {
  static readonly CYCLE = [2, 7, 4, 9, 1];
  readonly numHeads = 1;
  readonly vocabSize = 12;
  readonly maxLength = 200;
  length = 0;
  forwards = 0;
  forwardSizes: number[] = [];
  private ids: number[] = [];
  constructor(private readonly withArgmax: boolean) {}
  forward(tokenIds: readonly number[]): tf.Tensor2D {
    this.forwards++;
    this.forwardSizes.push(tokenIds.length);
    this.ids = [...this.ids.slice(0, this.length), ...tokenIds];
    this.length = this.ids.length;
    return tf.tensor2d(tokenIds.map((t) => [t]), [tokenIds.length, 1]); // [n, 1]: the token itself
  }
  private next(t: number): number {
    const i = CyclingModel.CYCLE.indexOf(t);
    return i < 0 ? CyclingModel.CYCLE[0]! : CyclingModel.CYCLE[(i + 1) % CyclingModel.CYCLE.length]!;
  }
  headLogits(states: tf.Tensor2D, offsets: readonly number[]): tf.Tensor3D {
    const rows = (states.arraySync() as number[][]).map(([t]) => this.next(t!));
    return tf.tidy(() => tf.tile(tf.expandDims(tf.mul(tf.oneHot(tf.tensor1d(rows, 'int32'), this.vocabSize), 5), 1), [1, offsets.length, 1]) as tf.Tensor3D); // [m, offsets, V]
  }
  truncate(length: number): void {
    this.length = length;
  }
  get headArgmax(): ((states: tf.Tensor2D, n: number) => tf.Tensor2D) | undefined {
    if (!this.withArgmax) return undefined;
    return (states, n) => {
      const rows = (states.arraySync() as number[][]).map(([t]) => this.next(t!));
      return tf.tensor2d(rows.map((t) => new Array<number>(n).fill(t)), [rows.length, n], 'int32');
    };
  }
}

describe('lookupDraft', () => {
  it('copies what followed the latest earlier match of the last n tokens, falling back to shorter n-grams', () => {
    // last 3-gram [1, 2, 3] occurs at 0 and 5: the latest (5) wins, its followers are 8, 9
    expect(lookupDraft([1, 2, 3, 4, 5, 1, 2, 3, 8, 9, 1, 2, 3], 3, 3)).toEqual([8, 9, 1]);
    expect(lookupDraft([1, 2, 3, 4, 5, 1, 2, 3, 8, 9, 1, 2, 3], 3, 2)).toEqual([8, 9]);
    // no 3-gram or 2-gram match for [.., 6, 7, 3]; the 1-gram 3 matched at 2 gives 4, 5
    expect(lookupDraft([1, 2, 3, 4, 5, 6, 7, 3], 3, 2)).toEqual([4, 5]);
    // nothing recurs: no draft; a match at the very end proposes only what exists
    expect(lookupDraft([1, 2, 3, 4], 3, 3)).toEqual([]);
    expect(lookupDraft([5, 5], 3, 3)).toEqual([5]);
    expect(lookupDraft([5, 6, 5, 6], 2, 0)).toEqual([]);
  });
});

describe('promptLookupDecode', () => {
  let layers: ReturnType<typeof tinyTransformer>;
  let cached: CachedTransformer;
  beforeAll(() => {
    layers = tinyTransformer({ mtpHeads: 2, maxLength: 64 });
    cached = new CachedTransformer(layers);
  });
  afterAll(() => {
    cached.dispose();
    layers.dispose();
  });

  it('equals greedyDecode token for token on a cached transformer, for several prompts, n-grams and draft lengths', async () => {
    for (const prompt of [[3], [5, 9, 5, 9, 5], [1, 2, 3, 1, 2, 3, 1, 2], [30, 4, 17, 4, 30, 4]]) {
      const greedy = await greedyDecode(cached, prompt, { maxNewTokens: 40 });
      for (const [ngram, draftLength] of [[3, 3], [1, 1], [2, 5]] as const) {
        const lookup = await expectNoLeak(() => promptLookupDecode(cached, prompt, { maxNewTokens: 40, ngram, draftLength }));
        expect(lookup.tokens).toEqual(greedy.tokens);
        expect(lookup.stats.tokens).toBe(40);
        expect(lookup.stats.forwards).toBeLessThanOrEqual(40);
        expect(lookup.stats.meanAcceptedLength).toBeCloseTo(40 / lookup.stats.forwards, 12);
        expect(lookup.stats.accepted).toBe(40 - lookup.stats.forwards); // every kept draft saves one forward
        expect(cached.length).toBe(0);
      }
    }
  });

  it('drafts a repeating text in one forward per step: fewer forwards than tokens, per-position counts add up', async () => {
    for (const withArgmax of [true, false]) {
      const model = new CyclingModel(withArgmax);
      const prompt = [2, 7, 4];
      const greedy = await greedyDecode(new CyclingModel(withArgmax), prompt, { maxNewTokens: 30 });
      const lookup = await expectNoLeak(() => promptLookupDecode(model, prompt, { maxNewTokens: 30 }));
      expect(lookup.tokens).toEqual(greedy.tokens);
      expect(model.forwards).toBe(lookup.stats.forwards);
      // once the cycle has been seen (after 5 tokens) every draft is right: 3 kept + 1 per forward
      expect(lookup.stats.forwards).toBeLessThan(12);
      expect(Math.max(...model.forwardSizes.slice(1))).toBe(4); // the committed token + 3 drafts
      expect(lookup.stats.acceptedPerOffset.reduce((a, b) => a + b, 0)).toBe(lookup.stats.accepted);
      expect(lookup.stats.accepted).toBe(30 - lookup.stats.forwards);
      lookup.stats.acceptedPerOffset.forEach((n, j) => expect(n).toBeLessThanOrEqual(lookup.stats.draftedPerOffset[j]!));
      expect(lookup.sources.filter((s) => s > 0).length).toBe(lookup.stats.accepted);
      expect(lookup.finishReason).toBe('length');
    }
  });

  it('stops at a stop token (included) and never commits past maxNewTokens', async () => {
    const model = new CyclingModel(true);
    const stopped = await promptLookupDecode(model, [2, 7, 4, 9, 1, 2], { maxNewTokens: 30, stopTokens: [1] });
    expect(stopped.tokens).toEqual([7, 4, 9, 1]);
    expect(stopped.finishReason).toBe('stop');
    for (const n of [1, 2, 7]) expect((await promptLookupDecode(model, [2, 7, 4, 9, 1, 2], { maxNewTokens: n })).tokens).toHaveLength(n);
  });

  it('refuses bad arguments naming them, without leaking', async () => {
    await expectThrowNoLeak(() => promptLookupDecode(cached, [], { maxNewTokens: 4 }), /promptLookupDecode: prompt must be a non-empty array of token ids/);
    await expectThrowNoLeak(() => promptLookupDecode(cached, [3, 99], { maxNewTokens: 4 }), /promptLookupDecode: prompt\[1\]/);
    await expectThrowNoLeak(() => promptLookupDecode(cached, [3], { maxNewTokens: 0 }), /promptLookupDecode: options\.maxNewTokens/);
    await expectThrowNoLeak(() => promptLookupDecode(cached, [3], { maxNewTokens: 4, ngram: 0 }), /promptLookupDecode: options\.ngram/);
    await expectThrowNoLeak(() => promptLookupDecode(cached, [3], { maxNewTokens: 64 }), /promptLookupDecode: options\.maxNewTokens must fit the model's context/);
  });
});
