/**
 * Exactness on a real pretrained model (stories260K), on the cpu and wasm backends, through both
 * loaders (the llama2.c `.bin`, and the same weights written in Hugging Face layout as F32
 * safetensors inside the test):
 *
 * - greedy decoding of the README prompt with the KV-cached model reproduces the README's
 *   reference text (run.c's output) token for token;
 * - teacher-forced logits of a few hundred tokens (the model's own continuation, then random
 *   ids) agree with the independent float64 implementation within 1e-4, through the cache fed in
 *   uneven chunks, and through the layers graph (on cpu over the first half, see GRAPH_TOKENS);
 * - speculative decoding with greedy acceptance equals greedy decoding, cached, for k = 2…4.
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode } from '../../src/index.js';
import { CachedTransformer, loadHfLlama, loadLlama2c, Llama2cTokenizer } from '../../src/models/index.js';
import { parseLlama2c, type ParsedLlama2c } from '../../src/models/llama2c.js';
import { expectNoLeak } from '../helpers/leak.js';
import { referenceGreedy, referenceLogits, type ReferenceConfig } from '../helpers/llama_reference.js';
import { readStories, storiesAvailable, storiesReference, toHfLayout, writeSafetensors, type StoriesReference } from '../helpers/stories.js';

/** Largest |library − float64| allowed on a logit (float32 rounding; measured ≤ 2.4e-5 on cpu, ≤ 3.3e-5 on wasm). */
const LOGIT_TOLERANCE = 1e-4;
/** Teacher-forced length: the model's own greedy continuation up to this many tokens … */
const TEACHER_GREEDY = 300;
/** … then this many seeded random ids (off the model's distribution). */
const TEACHER_RANDOM = 40;
/**
 * Positions the layers graph predicts in one call, per backend: every one on wasm; on cpu the first
 * half (its attention softmax costs ~0.2 µs per score, and the scores grow with the square of the
 * length), the greedy text and rotary positions past it being the cached path's on both backends.
 */
const GRAPH_TOKENS: Record<string, number> = { wasm: TEACHER_GREEDY + TEACHER_RANDOM, cpu: 170 };

type Loader = 'llama2c' | 'hf';

describe.skipIf(!storiesAvailable('tests/models/llama2c_exact'))('stories260K exactness', () => {
  let ref: StoriesReference;
  let parsed: ParsedLlama2c;
  let tokenizer: Llama2cTokenizer;
  let files: { bin: Uint8Array; hf: { config: Record<string, unknown>; safetensors: Uint8Array } };
  let greedyIds: number[];
  let teacher: number[];
  let expected: Float64Array[];

  beforeAll(() => {
    ref = storiesReference();
    const bin = readStories('checkpoint');
    parsed = parseLlama2c(bin);
    tokenizer = Llama2cTokenizer.fromBytes(readStories('tokenizer'), parsed.header.vocabSize);
    const hf = toHfLayout(parsed, 'F32');
    files = { bin, hf: { config: hf.config, safetensors: writeSafetensors(hf.tensors) } };
    const config = parsed.config as ReferenceConfig;
    greedyIds = referenceGreedy(config, parsed.weights, ref.promptIds, ref.steps);
    let seed = 12345;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % parsed.header.vocabSize;
    teacher = [...referenceGreedy(config, parsed.weights, ref.promptIds, TEACHER_GREEDY - 1), ...Array.from({ length: TEACHER_RANDOM }, random)];
    expected = referenceLogits(config, parsed.weights, teacher);
  });

  it('the float64 reference itself reproduces the README (the oracle is right)', () => {
    expect(tokenizer.decode(greedyIds)).toBe(ref.greedyText);
    expect(teacher).toHaveLength(TEACHER_GREEDY + TEACHER_RANDOM);
  });

  async function load(loader: Loader, mtpHeads: number): Promise<LayersModel> {
    return loader === 'llama2c' ? (await loadLlama2c(files.bin, { mtpHeads })).model : (await loadHfLlama(files.hf, { mtpHeads })).model;
  }

  /** Largest |got − expected| over positions `from…` of `[n, V]` logits. */
  function maxError(got: Float32Array, from: number, n: number): number {
    const V = parsed.header.vocabSize;
    let worst = 0;
    for (let t = 0; t < n; t++) for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(got[t * V + v]! - expected[from + t]![v]!));
    return worst;
  }

  describe.each(['cpu', 'wasm'])('%s', (backend) => {
    beforeAll(async () => {
      await tf.setBackend(backend);
      await tf.ready();
      expect(tf.getBackend()).toBe(backend);
    });

    describe.each<Loader>(['llama2c', 'hf'])('%s loader', (loader) => {
      const models = new Map<number, LayersModel>();
      beforeAll(async () => {
        for (const k of [2, 3, 4]) models.set(k, await load(loader, k));
      });
      afterAll(() => models.forEach((m) => m.dispose()));

      it('greedy decoding (KV cache) reproduces the README text', async () => {
        const cached = new CachedTransformer(models.get(4)!);
        const prompt = tokenizer.encode(ref.prompt);
        const result = await expectNoLeak(() => greedyDecode(cached, prompt, { maxNewTokens: ref.steps + 1 - prompt.length }));
        expect([...prompt, ...result.tokens]).toEqual(greedyIds);
        expect(tokenizer.decode([...prompt, ...result.tokens])).toBe(ref.greedyText);
        cached.dispose();
      });

      it(`teacher-forced logits of ${TEACHER_GREEDY + TEACHER_RANDOM} tokens match float64 within ${LOGIT_TOLERANCE} (chunked cache; layers graph: ${GRAPH_TOKENS[backend]} tokens)`, async () => {
        const n = teacher.length;
        const V = parsed.header.vocabSize;
        let graphError = Infinity;
        await expectNoLeak(async () => {
          const g = GRAPH_TOKENS[backend]!;
          const out = tf.tidy(() => tf.slice(models.get(2)!.predict(tf.tensor2d([teacher.slice(0, g)], [1, g], 'int32')) as tf.Tensor, [0, 0, 0, 0], [1, g, 1, V])); // [1, g, 1, V]: offset 0
          try {
            graphError = maxError(Float32Array.from(await out.data()), 0, g);
          } finally {
            out.dispose();
          }
        });
        // cache fed in uneven chunks: each chunk's logits at its own positions
        const cached = new CachedTransformer(models.get(4)!);
        let cachedError = 0;
        await expectNoLeak(async () => {
          for (let from = 0, size = 1; from < n; from += size, size = (size * 7) % 53 || 1) {
            const chunk = teacher.slice(from, from + size);
            const states = cached.forward(chunk); // [m, D]
            const logits = tf.tidy(() => tf.reshape(cached.headLogits(states, [0]), [chunk.length, V])); // [m, V]
            cachedError = Math.max(cachedError, maxError(Float32Array.from(await logits.data()), from, chunk.length));
            tf.dispose([states, logits]);
          }
          cached.dispose(); // frees the cache it kept
        });
        console.log(`${backend} ${loader}: max |logit − float64| graph ${graphError.toExponential(2)}, cached ${cachedError.toExponential(2)}`);
        expect(graphError).toBeLessThan(LOGIT_TOLERANCE);
        expect(cachedError).toBeLessThan(LOGIT_TOLERANCE);
      });

      it.each([2, 3, 4])('speculative decoding (greedy acceptance, k = %i, cached) equals greedy', async (k) => {
        const cached = new CachedTransformer(models.get(k)!);
        const prompt = ref.promptIds;
        const maxNewTokens = ref.steps + 1 - prompt.length;
        const greedy = await greedyDecode(cached, prompt, { maxNewTokens });
        cached.truncate(0);
        const spec = await expectNoLeak(() => speculativeDecode(cached, prompt, { maxNewTokens, acceptance: 'greedy', draftLength: k - 1 }));
        expect(spec.tokens).toEqual(greedy.tokens);
        expect([...prompt, ...greedy.tokens]).toEqual(greedyIds);
        cached.dispose();
      });
    });
  });
});
