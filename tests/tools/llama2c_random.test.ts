/**
 * tools/llama2c_random.ts: a random checkpoint parses back to its header and decodes through
 * `loadLlama2c`; the file writer and the in-memory writer give the same bytes; the made-up
 * tokenizer reads in run.c's format (a plain reader here, and `Llama2cTokenizer`); and
 * `npm run bench:scale`'s command line rejects bad values naming the flag, and its native rate is
 * pooled over runs from run.c's own report.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode } from '../../src/decoding/index.js';
import { CachedTransformer, loadLlama2c } from '../../src/models/index.js';
import { parseLlama2c } from '../../src/models/llama2c.js';
import { Llama2cTokenizer } from '../../src/models/llama2c_tokenizer.js';
import { achievedTokensPerSecond, parseScaleOptions, pooledTokensPerSecond } from '../../bench/scale.js';
import { UsageError } from '../../tools/args.js';
import { llama2cFileBytes, madeUpTokenizer, MIN_TOKENIZER_VOCAB, randomLlama2c, TINYLLAMAS_SHAPES, writeRandomLlama2c, type Llama2cShape } from '../../tools/llama2c_random.js';
import { useCpu } from '../helpers/backend.js';
import { readLlama2cPieces } from '../helpers/tok512_json.js';

const TINY: Llama2cShape = { dim: 16, hiddenDim: 40, nLayers: 2, nHeads: 4, nKvHeads: 2, vocabSize: 64, seqLen: 32 };

describe('randomLlama2c', () => {
  it('writes a version-0 checkpoint that parses back to its header, finite, norm gains 1, weights of the asked spread', () => {
    const bytes = randomLlama2c(TINY, { seed: 7 });
    expect(bytes.byteLength).toBe(llama2cFileBytes(TINY));
    expect(Array.from(new Int32Array(bytes.buffer, 0, 7))).toEqual([16, 40, 2, 4, 2, 64, 32]);
    const parsed = parseLlama2c(bytes);
    expect(parsed.header).toEqual({ ...TINY, sharedClassifier: true });
    expect(Array.from(parsed.weights.get('layers.1.ffn_norm.weight')!.data)).toEqual(new Array(16).fill(1));
    const embedding = parsed.weights.get('tok_embeddings.weight')!.data;
    const std = Math.sqrt(embedding.reduce((a, x) => a + x * x, 0) / embedding.length);
    expect(std).toBeGreaterThan(0.017);
    expect(std).toBeLessThan(0.023);
    expect(randomLlama2c(TINY, { seed: 7 })).toEqual(bytes); // seeded
    expect(randomLlama2c(TINY, { seed: 8 })).not.toEqual(bytes);
  });

  it('writes the same bytes to a file as in memory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'llama2c-random-test-'));
    try {
      const path = join(dir, 'tiny.bin');
      expect(writeRandomLlama2c(path, TINY, { seed: 3 })).toBe(llama2cFileBytes(TINY));
      expect(new Uint8Array(readFileSync(path))).toEqual(randomLlama2c(TINY, { seed: 3 }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('loads with loadLlama2c and decodes, greedy and speculative alike, leaving no tensor behind', async () => {
    await useCpu();
    const before = tf.memory().numTensors;
    const { model } = await loadLlama2c(randomLlama2c(TINY), { mtpHeads: 4, headKind: 'mlp', headHiddenSize: 16 });
    const cached = new CachedTransformer(model);
    try {
      const greedy = await greedyDecode(cached, [1, 5, 9], { maxNewTokens: 8 });
      const fast = await speculativeDecode(cached, [1, 5, 9], { maxNewTokens: 8, draftLength: 3 });
      expect(greedy.tokens).toHaveLength(8);
      expect(greedy.tokens.every((t) => Number.isInteger(t) && t >= 0 && t < 64)).toBe(true);
      expect(fast.tokens).toEqual(greedy.tokens);
    } finally {
      cached.dispose();
      model.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects a shape llama2.c cannot hold, naming the field', () => {
    expect(() => randomLlama2c({ ...TINY, nHeads: 3 })).toThrow('randomLlama2c: shape.dim must be nHeads (3) × an even head size, but got 16.');
    expect(() => randomLlama2c({ ...TINY, nKvHeads: 3 })).toThrow('randomLlama2c: shape.nKvHeads must divide nHeads (4), but got 3.');
    expect(() => randomLlama2c({ ...TINY, vocabSize: 0 })).toThrow('randomLlama2c: shape.vocabSize must be a positive integer at most 1048576, but got 0.');
  });

  it('knows the tinyllamas shapes', () => {
    expect(llama2cFileBytes(TINYLLAMAS_SHAPES['15M'])).toBe(60_816_028); // the published stories15M.bin's size
  });
});

describe('madeUpTokenizer', () => {
  it("reads in run.c's format: control tokens, byte fallbacks, ASCII, then distinct made-up pieces", () => {
    const bytes = madeUpTokenizer(512, 5);
    const { maxTokenLength, pieces, scores, end } = readLlama2cPieces(bytes, 512);
    expect(end).toBe(bytes.byteLength);
    expect(pieces.slice(0, 4)).toEqual(['<unk>', '\n<s>\n', '\n</s>\n', '<0x00>']);
    expect(pieces[258]).toBe('<0xFF>');
    expect(pieces[259]).toBe(' ');
    expect(new Set(pieces).size).toBe(512);
    expect(maxTokenLength).toBe(Math.max(...pieces.map((p) => new TextEncoder().encode(p).length)));
    expect(scores.every(Number.isFinite)).toBe(true);
    expect(madeUpTokenizer(512, 5)).toEqual(bytes);
  });

  it('is read by Llama2cTokenizer, which round-trips ASCII text', () => {
    const tokenizer = Llama2cTokenizer.fromBytes(madeUpTokenizer(600), 600);
    const ids = tokenizer.encode('Once upon a time');
    expect(ids[0]).toBe(1);
    expect(tokenizer.decode(ids)).toBe('Once upon a time');
  });

  it('refuses a vocabulary without room for the byte fallbacks and ASCII', () => {
    expect(() => madeUpTokenizer(64)).toThrow(`madeUpTokenizer: vocabSize must be an integer in [${MIN_TOKENIZER_VOCAB}, 1048576], but got 64.`);
  });
});

describe('bench:scale command line', () => {
  it('fills in the defaults', () => {
    const o = parseScaleOptions([]);
    expect([o.backends, o.shapes, o.kinds, o.draftVocab, o.kernels, o.tokens, o.repeats, o.native]).toEqual([['wasm', 'cpu'], ['260K', '15M', '42M', '110M'], ['mlp', 'sequential'], [null, 4096], ['fused', 'composite'], 0, 0, '']);
    expect(parseScaleOptions(['--draftVocab', 'full,32000,100']).draftVocab).toEqual([null, 32000, 100]);
  });

  it.each([
    [['--shapes', '7B'], '--shapes must be one of 260K, 15M, 42M, 110M, but got "7B".'],
    [['--kernels', 'fast'], '--kernels must be one of fused, composite, but got "fast".'],
    [['--kernels', 'fused,fused'], '--kernels must not repeat a value, but got "fused" twice.'],
    [['--kinds', 'mlp,tree'], '--kinds must be one of mlp, sequential, but got "tree".'],
    [['--backends', 'webgl'], '--backends must be one of wasm, cpu, but got "webgl".'],
    [['--draftVocab', 'half'], '--draftVocab must be "full" or an integer in [1, 32000], but got "half".'],
    [['--draftVocab', '0'], '--draftVocab must be "full" or an integer in [1, 32000], but got "0".'],
    [['--draftVocab', '40000'], '--draftVocab must be "full" or an integer in [1, 32000], but got "40000".'],
    [['--draftVocab', '4096,4096'], '--draftVocab must not repeat a value, but got "4096" twice.'],
    [['--tokens', '3'], '--tokens must be 0 (per backend and shape) or at least 8, but got 3.'],
    [['--tokens=-1'], '--tokens must be at least 0, but got -1.'],
    [['--repeats', '1.5'], '--repeats must be an integer, but got 1.5.'],
    [['--native', '/nonexistent/run'], '--native must be the path of an executable llama2.c run binary, but got "/nonexistent/run" (no such file).'],
    [['--native', tmpdir()], `--native must be the path of an executable llama2.c run binary, but got ${JSON.stringify(tmpdir())} (not a file).`],
    [['--model', 'x'], "Unknown option '--model'"],
  ])('rejects %j', (argv, message) => {
    expect(() => parseScaleOptions(argv)).toThrow(UsageError);
    expect(() => parseScaleOptions(argv)).toThrow(message);
  });
});

describe('bench:scale native rate', () => {
  it("reads run.c's achieved tok/s, inf included", () => {
    expect(achievedTokensPerSecond('Once upon a time\nachieved tok/s: 15923.076923\n')).toBe(15923.076923);
    expect(achievedTokensPerSecond('achieved tok/s: inf\n')).toBe(Infinity);
    expect(achievedTokensPerSecond('Segmentation fault\n')).toBeNull();
  });

  it('pools runs as 1000 over the mean ms per token, leaving out runs without a duration', () => {
    // 95 tokens in 5 ms and in 7 ms: 12 ms for 190 tokens, not the median of 19,000 and 13,571
    expect(pooledTokensPerSecond([19_000, 95_000 / 7])).toBeCloseTo(190_000 / 12, 6);
    expect(pooledTokensPerSecond([19_000, Infinity, 95_000 / 7])).toBeCloseTo(190_000 / 12, 6);
    expect(pooledTokensPerSecond([Infinity])).toBeNaN();
    expect(pooledTokensPerSecond([])).toBeNaN();
  });
});
