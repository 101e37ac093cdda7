/**
 * Drafters: prompt lookup (the n-gram copy), lists of drafters (the first that proposes wins),
 * and a user's own drafter — each decodes exactly what greedy decoding does, reports its share in
 * `stats.drafters`, hears how its proposals fared, and has its proposals checked (an out-of-range
 * token, a proposal too deep or too large, a bad parent) with errors naming it and no tensor left
 * behind. Also: the heads are asked at the accepted tip only (a spy counts the rows every draft
 * pass sees), and a long decode with a list of drafters keeps a constant tensor count.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lookupDraft } from '../../src/decoding/drafters.js';
import { greedyDecode, headsDrafter, promptLookupDrafter, speculativeDecode, speculativeStream, type Drafter, type MultiTokenModel } from '../../src/index.js';
import { TREE_LIMITS } from '../../src/decoding/tree.js';
import { CachedTransformer } from '../../src/models/index.js';
import { withSequentialHeads } from '../../src/models/draft_heads.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak, expectThrowNoLeak, LONG_TOKENS } from '../helpers/leak.js';
import { tinyTransformer } from '../helpers/models.js';

await useCpu();

/** Its next token is `CYCLE[(position of last token in CYCLE) + 1]`: greedy text cycles with period 5. Counts forwards; no draft heads (k = 1). */
class CyclingModel implements MultiTokenModel {
  static readonly CYCLE = [2, 7, 4, 9, 1];
  readonly numHeads = 1;
  readonly vocabSize = 12;
  readonly maxLength = 200;
  length = 0;
  forwardSizes: number[] = [];
  forward(tokenIds: readonly number[]): tf.Tensor2D {
    this.forwardSizes.push(tokenIds.length);
    this.length += tokenIds.length;
    return tf.tensor2d(tokenIds.map((t) => [t]), [tokenIds.length, 1]); // [n, 1]: the token itself
  }
  headLogits(states: tf.Tensor2D, offsets: readonly number[]): tf.Tensor3D {
    return tf.tidy(() => {
      // next(t) as a lookup table on the device: row t of a [V, V] table
      const table = Array.from({ length: this.vocabSize }, (_, t) => {
        const i = CyclingModel.CYCLE.indexOf(t);
        const next = i < 0 ? CyclingModel.CYCLE[0]! : CyclingModel.CYCLE[(i + 1) % CyclingModel.CYCLE.length]!;
        return Array.from({ length: this.vocabSize }, (_, b) => (b === next ? 5 : 0));
      });
      const rows = tf.gather(tf.tensor2d(table), tf.cast(tf.reshape(states, [-1]), 'int32')); // [m, V]
      return tf.tile(tf.expandDims(rows, 1), [1, offsets.length, 1]) as tf.Tensor3D; // [m, offsets, V]
    });
  }
  truncate(length: number): void {
    this.length = length;
  }
}

describe('lookupDraft', () => {
  it('copies what followed the latest earlier match of the last n tokens, falling back to shorter n-grams', () => {
    // last 3-gram [1, 2, 3] occurs at 0 and 5: the latest (5) wins, its followers are 8, 9
    expect(lookupDraft([1, 2, 3, 4, 5, 1, 2, 3, 8, 9, 1, 2, 3], 3, 3)).toEqual([8, 9, 1]);
    expect(lookupDraft([1, 2, 3, 4, 5, 1, 2, 3, 8, 9, 1, 2, 3], 3, 2)).toEqual([8, 9]);
    // no 3-gram or 2-gram match for [.., 6, 7, 3]; the 1-gram 3 matched at 2 gives 4, 5
    expect(lookupDraft([1, 2, 3, 4, 5, 6, 7, 3], 3, 2)).toEqual([4, 5]);
    expect(lookupDraft([1, 2, 3, 4, 5, 6, 7, 3], 3, 2, 2)).toEqual([]); // minNgram 2: the 1-gram is not tried
    // nothing recurs: no draft; a match at the very end proposes only what exists
    expect(lookupDraft([1, 2, 3, 4], 3, 3)).toEqual([]);
    expect(lookupDraft([5, 5], 3, 3)).toEqual([5]);
    expect(lookupDraft([5, 6, 5, 6], 2, 0)).toEqual([]);
  });
});

describe('promptLookupDrafter', () => {
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
      for (const [ngram, draftLength] of [[3, 3], [1, 1], [2, 5], [3, 'auto']] as const) {
        const r = await expectNoLeak(() => speculativeDecode(cached, prompt, { maxNewTokens: 40, drafter: promptLookupDrafter({ ngram }), draftLength }));
        expect(r.tokens).toEqual(greedy.tokens);
        expect(r.stats.forwards).toBeLessThanOrEqual(40);
        const lookup = r.stats.drafters!['promptLookup'] ?? { steps: 0, drafted: 0, accepted: 0 };
        expect(lookup.accepted).toBe(r.stats.accepted); // every kept draft is the drafter's
        expect([40 - r.stats.forwards, 41 - r.stats.forwards]).toContain(r.stats.accepted); // every kept draft saves one forward (+1: a last step cut after a kept draft)
        expect(cached.length).toBe(0);
      }
    }
  });

  it('drafts a repeating text on a model without draft heads: 4-token forwards once the cycle is seen', async () => {
    const model = new CyclingModel();
    const prompt = [2, 7, 4];
    const greedy = await greedyDecode(new CyclingModel(), prompt, { maxNewTokens: 30 });
    const r = await expectNoLeak(() => speculativeDecode(model, prompt, { maxNewTokens: 30, drafter: promptLookupDrafter(), draftLength: 3 }));
    expect(r.tokens).toEqual(greedy.tokens);
    expect(r.stats.forwards).toBeLessThan(12); // once the cycle has been seen every draft is right: 3 kept + 1 per forward
    expect(Math.max(...model.forwardSizes.slice(1))).toBe(4); // the committed token + 3 drafts
    expect(r.stats.acceptedPerOffset.reduce((a, b) => a + b, 0)).toBe(r.stats.accepted);
    expect([30 - r.stats.forwards, 31 - r.stats.forwards]).toContain(r.stats.accepted);
    expect(r.sources.filter((s) => s > 0).length).toBe(r.stats.accepted);
    // deeper than a model's k − 1 (here 0): drafters of one's own may draft up to DECODE_DEFAULTS.maxDraftLength
    const deep = await speculativeDecode(new CyclingModel(), prompt, { maxNewTokens: 30, drafter: promptLookupDrafter(), draftLength: 7 });
    expect(deep.tokens).toEqual(greedy.tokens);
    expect(deep.stats.draftedPerOffset.length).toBeGreaterThan(3); // a whole period of the cycle at once
  });

  it('stops at a stop token (included) and never commits past maxNewTokens', async () => {
    const run = (o: object) => speculativeDecode(new CyclingModel(), [2, 7, 4, 9, 1, 2], { drafter: promptLookupDrafter(), draftLength: 3, ...o });
    const stopped = await run({ maxNewTokens: 30, stopTokens: [1] });
    expect(stopped.tokens).toEqual([7, 4, 9, 1]);
    expect(stopped.finishReason).toBe('stop');
    for (const n of [1, 2, 7]) expect((await run({ maxNewTokens: n })).tokens).toHaveLength(n);
  });

  it('refuses bad options naming them', () => {
    expect(() => promptLookupDrafter({ ngram: 0 })).toThrow('promptLookupDrafter: options.ngram must be a positive integer at most 64, but got 0.');
    expect(() => promptLookupDrafter({ ngram: 2, minNgram: 3 })).toThrow('promptLookupDrafter: options.minNgram must be a positive integer at most 2, but got 3.');
  });
});

describe('lists of drafters and drafters of your own', () => {
  let layers: ReturnType<typeof tinyTransformer>;
  let cached: CachedTransformer;
  beforeAll(() => {
    layers = tinyTransformer({ mtpHeads: 4, maxLength: 96 });
    cached = new CachedTransformer(layers);
  });
  afterAll(() => {
    cached.dispose();
    layers.dispose();
  });

  it('[promptLookupDrafter(), headsDrafter()]: n-gram copies where they match, the heads elsewhere, identical to greedy', async () => {
    for (const prompt of [[5, 9, 5, 9, 5, 9], [3, 1, 4, 1, 5], [7]]) {
      const greedy = await greedyDecode(cached, prompt, { maxNewTokens: 60 });
      const r = await expectNoLeak(() => speculativeDecode(cached, prompt, { maxNewTokens: 60, drafter: [promptLookupDrafter(), headsDrafter()], draftLength: 3 }));
      expect(r.tokens).toEqual(greedy.tokens);
      const { heads, promptLookup } = r.stats.drafters!;
      expect((heads?.steps ?? 0) + (promptLookup?.steps ?? 0)).toBeLessThanOrEqual(r.stats.forwards);
      expect((heads?.accepted ?? 0) + (promptLookup?.accepted ?? 0)).toBe(r.stats.accepted);
    }
  });

  it('a chain drafter of your own: asked before every step with the text so far, told the outcome, identical to greedy', async () => {
    const prompt = [3, 1, 4];
    const greedy = await greedyDecode(cached, prompt, { maxNewTokens: 30 });
    const seen: number[][] = [];
    const outcomes: { proposed: number; accepted: number }[] = [];
    // proposes greedy's own continuation, wrong at every 5th position: most drafts are kept, some are not
    const oracle: Drafter = {
      name: 'oracle',
      propose: ({ tokens, maxDepth, vocabSize }) => {
        seen.push(tokens.slice());
        const at = tokens.length - prompt.length;
        return greedy.tokens.slice(at, at + maxDepth).map((t, i) => ((at + i) % 5 === 4 ? (t + 1) % vocabSize : t));
      },
      observe: (o) => outcomes.push(o),
    };
    const r = await expectNoLeak(() => speculativeDecode(cached, prompt, { maxNewTokens: 30, drafter: oracle, draftLength: 3 }));
    expect(r.tokens).toEqual(greedy.tokens);
    expect(seen[0]).toEqual(prompt); // the first proposal continues the prompt (fed with it)
    seen.forEach((text) => expect(text).toEqual([...prompt, ...greedy.tokens.slice(0, text.length - prompt.length)]));
    expect(outcomes.length).toBe(r.stats.drafters!['oracle']!.steps);
    expect(outcomes.reduce((a, o) => a + o.accepted, 0)).toBe(r.stats.accepted);
    expect(r.stats.accepted).toBeGreaterThan(r.stats.drafted / 2);
    expect(r.stats.accepted).toBeLessThan(r.stats.drafted);
  });

  it('a tree drafter of your own: two branches per step, repeated siblings dropped, identical to greedy', async () => {
    const prompt = [9, 2];
    const greedy = await greedyDecode(cached, prompt, { maxNewTokens: 24 });
    const branching: Drafter = {
      name: 'branching',
      propose: ({ tokens, vocabSize, maxNodes }) => {
        expect(maxNodes).toBe(TREE_LIMITS.maxNodes); // the model verifies trees: a drafter may propose any within the node limit
        const at = tokens.length - prompt.length;
        const right = greedy.tokens[at] ?? 0;
        const wrong = (right + 1) % vocabSize;
        // wrong first (so the walk must try the second child), right second, a repeat of the wrong one third (dropped)
        return { tokens: [wrong, right, wrong, greedy.tokens[at + 1] ?? 0], parents: [-1, -1, -1, 1] };
      },
    };
    const chunks: number[] = [];
    for await (const c of speculativeStream(cached, prompt, { maxNewTokens: 24, drafter: branching, draftLength: 2 })) chunks.push(c.tree?.tokens.length ?? 0);
    const r = await expectNoLeak(() => speculativeDecode(cached, prompt, { maxNewTokens: 24, drafter: branching, draftLength: 2 }));
    expect(r.tokens).toEqual(greedy.tokens);
    expect(Math.max(...chunks)).toBe(3); // the repeated sibling never reaches the model
    expect(r.stats.meanAcceptedLength).toBeGreaterThan(2.5); // both right drafts kept through the second child
  });

  it("refuses a drafter's bad proposal naming the drafter, with no tensor left behind", async () => {
    const bad = (propose: Drafter['propose']): Drafter => ({ name: 'bad', propose });
    const cases: [Drafter['propose'], string][] = [
      [() => [99], "speculativeDecode: drafter 'bad''s proposal token 0 must be a token id, an integer in [0, 32), but got 99."],
      [() => [1, 2, 3, 4], "speculativeDecode: drafter 'bad''s proposal must be at most maxDepth = 3 deep, but token 3 is at depth 4."],
      [() => ({ tokens: new Array(300).fill(1), parents: new Array(300).fill(-1) }), `speculativeDecode: drafter 'bad''s proposal must hold at most maxNodes = ${TREE_LIMITS.maxNodes} tokens, but got "300 tokens".`],
      [() => ({ tokens: [1, 2], parents: [-1, 1] }), "speculativeDecode: drafter 'bad''s proposal.parents[1] must be an integer in [-1, 0] (an earlier token, or -1 under the committed text), but got 1."],
      [() => ({ tokens: [1, 2], parents: [-1] }), "speculativeDecode: drafter 'bad''s proposal.parents must be an array of 2 parent indices (one per token), but got [-1]."],
      [() => 'abc' as never, "speculativeDecode: drafter 'bad''s proposal must be an array of token ids, { tokens, parents } or null, but got \"abc\"."],
      [() => { throw new Error('drafter broke'); }, 'drafter broke'],
    ];
    for (const [propose, message] of cases) {
      await expectThrowNoLeak(() => speculativeDecode(cached, [1, 2], { maxNewTokens: 10, drafter: bad(propose), draftLength: 3 }), message);
    }
    const deep: Drafter = { name: 'deep', propose: () => ({ tokens: [1, 2, 3], parents: [-1, 0, 1] }) };
    await expectThrowNoLeak(() => speculativeDecode(cached, [1, 2], { maxNewTokens: 10, drafter: deep, draftLength: 2 }), "speculativeDecode: drafter 'deep''s proposal must be at most maxDepth = 2 deep, but token 2 is at depth 3.");
  });

  it('refuses bad drafter options naming them', async () => {
    const propose = () => null;
    const cases: [unknown, string][] = [
      [{ propose }, 'speculativeDecode: options.drafter.name must be a non-empty string, but got undefined.'],
      [{ name: 'x' }, 'speculativeDecode: options.drafter.propose must be a function (context) => proposal, but got undefined.'],
      [[], 'speculativeDecode: options.drafter must be a drafter or a list of 1 to 16 drafters, but got [].'],
      [[{ name: 'x', propose }, { name: 'x', propose }], 'speculativeDecode: options.drafter[1].name must differ from the other drafters\' names (statistics are kept per name), but "x" repeats.'],
      [42, 'speculativeDecode: options.drafter must be a drafter: an object with a name and a propose(context) method, but got 42.'],
    ];
    for (const [drafter, message] of cases) await expectThrowNoLeak(() => speculativeDecode(cached, [1], { drafter: drafter as Drafter }), message);
    await expectThrowNoLeak(
      () => speculativeDecode(cached, [1], { drafter: promptLookupDrafter(), tree: [[0]] }),
      "speculativeDecode: options.tree shapes the heads' drafts, so options.drafter must include headsDrafter(), but it is [promptLookup].",
    );
    await expectThrowNoLeak(() => speculativeDecode(cached, [1], { drafter: promptLookupDrafter(), draftLength: 8 }), "speculativeDecode: options.draftLength must be 'auto' or an integer in [0, max(numHeads - 1, DECODE_DEFAULTS.maxDraftLength) = 7], but got 8.");
  });

  it(`${LONG_TOKENS} tokens with [promptLookupDrafter(), headsDrafter()] and sampling: the tensor count is the same after every step`, async () => {
    const long = tinyTransformer({ mtpHeads: 3, maxLength: LONG_TOKENS + 100 });
    const model = new CachedTransformer(long);
    const counts: number[] = [];
    await expectNoLeak(async () => {
      for await (const chunk of speculativeStream(model, [1, 2, 3], { maxNewTokens: LONG_TOKENS, acceptance: 'sampling', seed: 3, drafter: [promptLookupDrafter(), headsDrafter()], draftLength: 2 })) {
        if (chunk.step > 0) counts.push(tf.memory().numTensors);
      }
    });
    expect(counts.length).toBeGreaterThan(100);
    expect(new Set(counts.slice(1)).size).toBe(1); // after the first step, whose drafts are carried from then on
    model.dispose();
    long.dispose();
  }, 300_000);
});

describe('the heads draft at the accepted tip only', () => {
  it.each([
    ['greedy chain', {}],
    ['sampling chain', { acceptance: 'sampling' as const, seed: 1 }],
    ['typical chain', { acceptance: 'typical' as const, seed: 1 }],
    ['static tree', { tree: [[0], [1], [0, 0]] }],
    ['dynamic tree', { tree: { topK: 3, maxNodes: 5 } }],
  ])('%s: every draft pass sees exactly one row, offset 0 passes see every fed row', async (_, extra) => {
    const layers = tinyTransformer({ mtpHeads: 4, maxLength: 96 });
    const inner = new CachedTransformer(layers);
    const draftRows: number[] = [];
    const verifyRows: number[] = [];
    // a proxy that passes every member through and records what the draft passes see
    const spy: MultiTokenModel = Object.create(inner, {
      headLogits: { value: (s: tf.Tensor2D, offsets: readonly number[]) => ((offsets.some((j) => j > 0) ? draftRows : verifyRows).push(s.shape[0]), inner.headLogits(s, offsets)) },
      headArgmax: { value: (s: tf.Tensor2D, n: number) => ((n > 1 ? draftRows : verifyRows).push(s.shape[0]), inner.headArgmax(s, n)) },
      headTopK: { value: (s: tf.Tensor2D, n: number, k: number) => (draftRows.push(s.shape[0] * (n > 1 ? 1 : 0)), inner.headTopK(s, n, k)) },
      ...(inner.draftArgmax ? { draftArgmax: { value: (s: tf.Tensor2D, r: tf.Tensor1D, n: number) => (draftRows.push(s.shape[0]), inner.draftArgmax!(s, r, n)) } } : {}),
      ...(inner.draftTopK ? { draftTopK: { value: (s: tf.Tensor2D, r: tf.Tensor1D, n: number, k: number) => (draftRows.push(s.shape[0]), inner.draftTopK!(s, r, n, k)) } } : {}),
      ...(inner.draftLogits ? { draftLogits: { value: (s: tf.Tensor2D, r: tf.Tensor1D, n: number, c?: never) => (draftRows.push(s.shape[0]), inner.draftLogits!(s, r, n, c)) } } : {}),
    });
    const greedy = await greedyDecode(inner, [4, 8, 15], { maxNewTokens: 30 });
    const r = await speculativeDecode(spy, [4, 8, 15], { maxNewTokens: 30, draftLength: 3, ...extra });
    if (!('acceptance' in extra)) expect(r.tokens).toEqual(greedy.tokens);
    expect(draftRows.length).toBeGreaterThan(5);
    expect(new Set(draftRows)).toEqual(new Set([1])); // one row per draft pass: the tip's
    expect(Math.max(...verifyRows)).toBeGreaterThan(1); // verification saw whole blocks
    inner.dispose();
    layers.dispose();
  });
});

describe('a draft vocabulary: no draft outside it is ever fed, and the output is greedy decoding', () => {
  const SUBSET = [0, 3, 5, 8, 13, 21, 30]; // leaves out most of the 32 tokens, the likely ones among them
  it.each([
    ['parallel heads, greedy chain', 'mlp', {}],
    ['parallel heads, sampling chain', 'mlp', { acceptance: 'sampling' as const, seed: 2 }],
    ['parallel heads, static tree', 'mlp', { tree: [[0], [1], [0, 0], [2]] }],
    ['parallel heads, dynamic tree', 'mlp', { tree: { topK: 4, maxNodes: 8 } }],
    ['sequential modules, greedy chain', 'sequential', {}],
    ['sequential modules, sampling chain', 'sequential', { acceptance: 'sampling' as const, seed: 2 }],
    ['sequential modules, grown tree', 'sequential', { tree: { topK: 3, maxNodes: 6 } }],
  ])('%s', async (_, kind, extra) => {
    const base = tinyTransformer({ mtpHeads: kind === 'mlp' ? 4 : 1, maxLength: 64, headKind: kind === 'mlp' ? 'mlp' : 'residual', ...(kind === 'mlp' ? { headHiddenSize: 8 } : {}) });
    const layers = kind === 'mlp' ? base : withSequentialHeads(base, 4, 8);
    (layers.getLayer('mtp_head') as unknown as { setDraftVocab(ids: number[] | null): void }).setDraftVocab(SUBSET);
    const inner = new CachedTransformer(layers);
    expect(inner.draftVocab).toEqual(SUBSET);
    const fed: number[][] = [];
    // a view of `inner` that records what is fed (methods run with the view as `this`, so its state stays in one place)
    const spy: MultiTokenModel = Object.create(inner, {
      forward: { value(this: CachedTransformer, ids: readonly number[]) { fed.push(ids.slice(1)); return CachedTransformer.prototype.forward.call(this, ids); } },
      forwardTree: { value(this: CachedTransformer, ids: readonly number[], parents: readonly number[]) { fed.push(ids.slice(1)); return CachedTransformer.prototype.forwardTree.call(this, ids, parents); } },
    });
    const prompt = [4, 9, 16];
    const greedy = await greedyDecode(inner, prompt, { maxNewTokens: 40 });
    const r = await expectNoLeak(() => speculativeDecode(spy, prompt, { maxNewTokens: 40, draftLength: 3, ...extra }));
    if (!('acceptance' in extra)) expect(r.tokens).toEqual(greedy.tokens);
    const drafts = fed.slice(1).flat(); // every step after the prompt's feeds one committed token, then drafts
    expect(drafts.length).toBeGreaterThan(20);
    expect(drafts.filter((t) => !SUBSET.includes(t))).toEqual([]);
    expect(r.tokens.some((t) => !SUBSET.includes(t))).toBe(true); // the verifier still commits any token
    inner.dispose();
    layers.dispose();
  });

  it(`${LONG_TOKENS} tokens of sequential modules with a draft vocabulary: the tensor count is the same after every step`, async () => {
    const layers = withSequentialHeads(tinyTransformer({ mtpHeads: 1, maxLength: LONG_TOKENS + 100 }), 4, 8, SUBSET);
    const model = new CachedTransformer(layers);
    const counts: number[] = [];
    await expectNoLeak(async () => {
      for await (const chunk of speculativeStream(model, [1, 2, 3], { maxNewTokens: LONG_TOKENS, draftLength: 3 })) if (chunk.step > 0) counts.push(tf.memory().numTensors);
    });
    expect(counts.length).toBeGreaterThan(100);
    expect(new Set(counts).size).toBe(1);
    model.dispose();
    layers.dispose();
  }, 300_000);
});
