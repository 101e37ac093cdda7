/**
 * `parseLlama2c` / `loadLlama2c` on stories260K (cpu): the header and weights as the README and
 * the file state them, the float64 reference reproducing the README's greedy text from the
 * parsed weights (which checks the parser, the RoPE layout and the tokenizer independently of
 * the library's transformer), an untied classifier, URLs, leaks, and one error per bad file.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CachedTransformer } from '../../src/models/index.js';
import { loadLlama2c, parseLlama2c, type ParsedLlama2c } from '../../src/models/llama2c.js';
import { Llama2cTokenizer } from '../../src/models/llama2c_tokenizer.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';
import { argmax, referenceGreedy, referenceLogits, type ReferenceConfig } from '../helpers/llama_reference.js';
import { readStories, storiesAvailable, storiesPath, storiesReference, type StoriesReference } from '../helpers/stories.js';
import { readFileSync } from 'node:fs';

const HEADER_BYTES = 28;
/** Byte offset of the float array `index` (0 = token_embedding) of a llama2.c file, read plainly from its header. */
function arrayOffsets(bytes: Uint8Array): Record<string, number> {
  const [dim, hidden, layers, heads, kvHeads, vocab] = Array.from({ length: 7 }, (_, i) => new DataView(bytes.buffer, bytes.byteOffset).getInt32(4 * i, true));
  const kvDim = (dim! * kvHeads!) / heads!;
  const sizes: Array<[string, number]> = [
    ['token_embedding', Math.abs(vocab!) * dim!],
    ['rms_att', layers! * dim!],
    ['wq', layers! * dim! * dim!],
    ['wk', layers! * kvDim * dim!],
    ['wv', layers! * kvDim * dim!],
    ['wo', layers! * dim! * dim!],
    ['rms_ffn', layers! * dim!],
    ['w1', layers! * hidden! * dim!],
    ['w2', layers! * hidden! * dim!],
    ['w3', layers! * hidden! * dim!],
    ['rms_final', dim!],
  ];
  const out: Record<string, number> = {};
  let at = HEADER_BYTES;
  for (const [name, n] of sizes) [out[name], at] = [at, at + 4 * n];
  return out;
}

describe.skipIf(!storiesAvailable('tests/models/llama2c'))('llama2.c loader on stories260K', () => {
  let file: Uint8Array;
  let tokFile: Uint8Array;
  let parsed: ParsedLlama2c;
  let ref: StoriesReference;
  beforeAll(async () => {
    await useCpu();
    file = readStories('checkpoint');
    tokFile = readStories('tokenizer');
    parsed = parseLlama2c(file);
    ref = storiesReference();
  });

  describe('parseLlama2c', () => {
    it('reads the architecture the README states', () => {
      const readme = readFileSync(storiesPath('readme'), 'utf8');
      const m = /dim (\d+), hidden (\d+), (\d+) layers, (\d+) query heads, (\d+) key\/value heads, vocabulary (\d+), context (\d+)\s+positions; ([\d,]+) parameters/.exec(readme)!;
      const [dim, hidden, layers, heads, kvHeads, vocab, context, params] = m.slice(1).map((s) => Number(s.replace(/,/g, '')));
      expect(parsed.header).toEqual({ dim, hiddenDim: hidden, nLayers: layers, nHeads: heads, nKvHeads: kvHeads, vocabSize: vocab, seqLen: context, sharedClassifier: true });
      expect(parsed.config).toMatchObject({
        hiddenSize: dim, intermediateSize: hidden, numLayers: layers, numAttentionHeads: heads, numKeyValueHeads: kvHeads, vocabSize: vocab, maxLength: context,
        norm: 'rmsNorm', normEpsilon: 1e-5, positions: 'rotary', ropeTheta: 10000, ropeLayout: 'interleaved', mlp: 'swiglu', useBias: false, tiedEmbeddings: true,
      });
      expect([...parsed.weights.values()].reduce((n, t) => n + t.data.length, 0)).toBe(params);
      expect(parsed.weights.has('output.weight')).toBe(false);
    });

    it('transposes every [out][in] matrix to [in, out] and keeps vectors and the embedding as stored', () => {
      const view = new DataView(file.buffer, file.byteOffset);
      const at = arrayOffsets(file);
      const { dim: D, hiddenDim: F, nLayers: L } = parsed.header;
      const kv = (D / parsed.header.nHeads) * parsed.header.nKvHeads;
      // [file array, canonical name, out, in]: check a spread of elements of every matrix of every layer
      const matrices: Array<[string, string, number, number]> = [['wq', 'attention.wq', D, D], ['wk', 'attention.wk', kv, D], ['wv', 'attention.wv', kv, D], ['wo', 'attention.wo', D, D], ['w1', 'feed_forward.w1', F, D], ['w2', 'feed_forward.w2', D, F], ['w3', 'feed_forward.w3', F, D]];
      for (let l = 0; l < L; l++) {
        for (const [array, name, out, inp] of matrices) {
          const t = parsed.weights.get(`layers.${l}.${name}.weight`)!;
          expect(t.shape).toEqual([inp, out]);
          for (const [o, i] of [[0, 0], [out - 1, 0], [0, inp - 1], [out - 1, inp - 1], [(l * 7) % out, (l * 13) % inp]] as const) {
            expect(t.data[i * out + o]).toBe(view.getFloat32(at[array]! + 4 * (l * out * inp + o * inp + i), true));
          }
        }
        expect(parsed.weights.get(`layers.${l}.ffn_norm.weight`)!.data[D - 1]).toBe(view.getFloat32(at.rms_ffn! + 4 * (l * D + D - 1), true));
      }
      expect(parsed.weights.get('tok_embeddings.weight')!.data[5 * D + 3]).toBe(view.getFloat32(at.token_embedding! + 4 * (5 * D + 3), true));
      expect(parsed.weights.get('norm.weight')!.data[7]).toBe(view.getFloat32(at.rms_final! + 28, true));
    });

    it('the float64 reference on the parsed weights greedy-decodes the README text exactly', () => {
      const tok = Llama2cTokenizer.fromBytes(tokFile, parsed.header.vocabSize);
      const prompt = tok.encode(ref.prompt);
      expect(prompt).toEqual(ref.promptIds);
      const ids = referenceGreedy(parsed.config as ReferenceConfig, parsed.weights, prompt, ref.steps);
      expect(tok.decode(ids)).toBe(ref.greedyText);
    });
  });

  describe('loadLlama2c', () => {
    it('builds the model and the tokenizer, leaving only the model weights; k heads with offset 0 = the checkpoint', async () => {
      await expectNoLeak(async () => {
        const { model, tokenizer } = await loadLlama2c(file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength) as ArrayBuffer, { tokenizer: tokFile, mtpHeads: 3 });
        expect(tokenizer).toBeInstanceOf(Llama2cTokenizer);
        const cached = new CachedTransformer(model);
        expect([cached.numHeads, cached.vocabSize, cached.maxLength]).toEqual([3, parsed.header.vocabSize, parsed.header.seqLen]);
        // every offset starts as the next-token head
        const states = cached.forward(ref.promptIds);
        const logits = tf.tidy(() => cached.headLogits(tf.slice(states, [ref.promptIds.length - 1, 0], [1, -1]) as tf.Tensor2D, [0, 1, 2]));
        const [l0, l1, l2] = tf.tidy(() => tf.unstack(tf.squeeze(logits, [0])).map((t) => t.dataSync()));
        expect(l1).toEqual(l0);
        expect(l2).toEqual(l0);
        tf.dispose([states, logits]);
        cached.dispose();
        model.dispose();
      });
      const { model, tokenizer } = await loadLlama2c(file);
      expect(tokenizer).toBeUndefined();
      expect(new CachedTransformer(model).numHeads).toBe(4); // the library's default k
      model.dispose();
    });

    it('an untied classifier (negative vocab_size, classifier appended) is used as offset 0', async () => {
      const { vocabSize: V, dim: D } = parsed.header;
      const embedding = parsed.weights.get('tok_embeddings.weight')!.data;
      const classifier = embedding.map((v, i) => v * (1 + (i % 7) / 10)); // [V, D], a different matrix
      const untied = new Uint8Array(file.length + 4 * V * D);
      untied.set(file);
      new DataView(untied.buffer).setInt32(20, -V, true);
      new Uint8Array(untied.buffer, file.length).set(new Uint8Array(classifier.buffer));
      const p = parseLlama2c(untied);
      expect(p.config.tiedEmbeddings).toBe(false);
      const out = p.weights.get('output.weight')!;
      expect(out.shape).toEqual([D, V]);
      expect(out.data[3 * V + 10]).toBe(classifier[10 * D + 3]);
      const tokens = ref.promptIds;
      const expected = referenceLogits(p.config as ReferenceConfig, p.weights, tokens).at(-1)!;
      await expectNoLeak(async () => {
        const { model } = await loadLlama2c(untied, { mtpHeads: 2 });
        const cached = new CachedTransformer(model);
        const states = cached.forward(tokens);
        const got = tf.tidy(() => cached.headLogits(tf.slice(states, [tokens.length - 1, 0], [1, -1]) as tf.Tensor2D, [0]).dataSync());
        const tied = referenceLogits(parsed.config as ReferenceConfig, parsed.weights, tokens).at(-1)!;
        expect(Math.max(...got.map((v, i) => Math.abs(v - expected[i]!)))).toBeLessThan(1e-4);
        expect(Math.max(...got.map((v, i) => Math.abs(v - tied[i]!)))).toBeGreaterThan(0.1); // not the embedding
        expect(argmax(got)).toBe(argmax(expected));
        states.dispose();
        cached.dispose();
        model.dispose();
      });
    });

    describe('from URLs', () => {
      let server: Server;
      let base: string;
      beforeAll(async () => {
        server = createServer((req, res) => {
          const body = req.url === '/stories260K.bin' ? file : req.url === '/tok512.bin' ? tokFile : null;
          res.writeHead(body ? 200 : 404, { 'content-type': 'application/octet-stream' }).end(body ?? 'not found');
        });
        await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
        base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      });
      afterAll(() => new Promise<void>((done) => server.close(() => done())));

      it('fetches the checkpoint and the tokenizer', async () => {
        await expectNoLeak(async () => {
          const { model, tokenizer } = await loadLlama2c(`${base}/stories260K.bin`, { tokenizer: `${base}/tok512.bin` });
          expect(tokenizer!.encode(ref.prompt)).toEqual(ref.promptIds);
          model.dispose();
        });
      });

      it('an HTTP error names the argument and the URL', async () => {
        await expectThrowNoLeak(() => loadLlama2c(`${base}/missing.bin`), `loadLlama2c: checkpoint "${base}/missing.bin": fetching failed with HTTP 404`);
        await expectThrowNoLeak(() => loadLlama2c(`${base}/stories260K.bin`, { tokenizer: `${base}/nope` }), `loadLlama2c: options.tokenizer "${base}/nope": fetching failed with HTTP 404`);
      });
    });
  });

  describe('bad files fail fast, naming the file and the field, leaking nothing', () => {
    const W = 'loadLlama2c: checkpoint';
    /** A copy of the file changed by `edit` (a DataView over the copy). */
    const edited = (edit: (view: DataView, bytes: Uint8Array) => Uint8Array | void) => {
      const bytes = file.slice();
      return edit(new DataView(bytes.buffer), bytes) ?? bytes;
    };
    const grown = (bytes: Uint8Array, extra: number) => {
      const out = new Uint8Array(bytes.length + extra);
      out.set(bytes);
      return out;
    };
    const setHeader = (field: number, value: number) => edited((v) => v.setInt32(4 * field, value, true));
    // messages are functions: they read the file, which is loaded after the cases are collected
    const cases: Array<[string, () => Uint8Array, () => string]> = [
      ['truncated header', () => file.slice(0, 20), () => `${W}: file is truncated: it must hold the 28-byte header, but has 20 bytes.`],
      ['truncated weights', () => file.slice(0, 500_000), () => `${W}: file is truncated: its size must match the header's shapes (${file.length} bytes), but got 500000 bytes (field w1 ends at byte ${arrayOffsets(file).w2}).`],
      ['trailing bytes', () => grown(file, 4), () => `${W}: file is too long: its size must match the header's shapes (${file.length} bytes), but got ${file.length + 4} bytes (4 bytes follow the last field).`],
      ['a versioned export (wrong header)', () => setHeader(0, 0x616b3432), () => `${W}: header must be the legacy version-0 layout (seven int32, no magic; llama2.c export.py --version 0), but got the magic "ak42" of a versioned export.`],
      ['an absurd dim', () => setHeader(0, 1_000_000_000), () => `${W}: header.dim must be a positive integer at most 65536, but got 1000000000.`],
      ['zero layers', () => setHeader(2, 0), () => `${W}: header.n_layers must be a positive integer at most 1024, but got 0.`],
      ['more kv heads than heads', () => setHeader(4, 9), () => `${W}: header.n_kv_heads must be a positive integer at most 8, but got 9.`],
      ['kv heads not dividing heads', () => setHeader(4, 3), () => `${W}: header.n_kv_heads must divide n_heads (8), but got 3.`],
      ['heads not dividing dim', () => setHeader(3, 5), () => `${W}: header.dim must be n_heads (5) × an even head size, but got 64.`],
      ['a zero vocabulary', () => setHeader(5, 0), () => `${W}: header.vocab_size must be a non-zero integer in [-1048576, 1048576], but got 0.`],
      ['an absurd context', () => setHeader(6, 2 ** 30), () => `${W}: header.seq_len must be a positive integer at most 1048576, but got 1073741824.`],
      ['an absurd vocabulary × dim', () => edited((v) => (v.setInt32(0, 65536, true), v.setInt32(12, 1, true), v.setInt32(16, 1, true), v.setInt32(20, 1 << 20, true))), () => `${W}: token_embedding must have at most 2147483648 elements, but got 68719476736.`],
      ['a hidden size that disagrees with the weights', () => setHeader(1, 173), () => `${W}: file is truncated: its size must match the header's shapes (${file.length + 4 * 3 * parsed.header.nLayers * parsed.header.dim} bytes), but got ${file.length} bytes (field freq_cis ends at byte ${file.length + 4 * 3 * parsed.header.nLayers * parsed.header.dim}).`], // w1, w2, w3 grow by a row per layer
      ['a NaN weight', () => edited((v) => v.setFloat32(arrayOffsets(file).wk! + 4 * 1234, NaN, true)), () => `${W}: wk[1234] must be a finite float32, but got NaN.`],
      ['an infinite weight', () => edited((v) => v.setFloat32(arrayOffsets(file).rms_final! + 4 * 63, -Infinity, true)), () => `${W}: rms_final[63] must be a finite float32, but got -Infinity.`],
    ];
    it.each(cases)('%s', async (_, make, message) => {
      const bytes = make();
      const start = performance.now();
      await expectThrowNoLeak(() => loadLlama2c(bytes, { tokenizer: tokFile }), message());
      expect(performance.now() - start).toBeLessThan(1000);
    });

    it('a tokenizer that disagrees with the checkpoint fails before the model is built', async () => {
      const before = tf.memory().numTensors;
      await expectThrowNoLeak(() => loadLlama2c(file, { tokenizer: tokFile.slice(0, 3000) }), 'loadLlama2c: options.tokenizer: file is truncated: vocabSize 512 tokens need at least 4100 bytes (a score and a length each), but the file has 3000 bytes.');
      expect(tf.memory().numTensors).toBe(before);
    });

    it('bad arguments', async () => {
      await expectThrowNoLeak(() => loadLlama2c(42 as unknown as Uint8Array), 'loadLlama2c: checkpoint must be an ArrayBuffer, a Uint8Array or a URL string, but got 42.');
      await expectThrowNoLeak(() => loadLlama2c(file, { mtpHeads: 0 }), 'loadLlama2c: options.mtpHeads must be a positive integer at most 64, but got 0.');
      await expectThrowNoLeak(() => loadLlama2c(file, { mtpHead: 2 } as never), 'loadLlama2c: options may only have the keys tokenizer, mtpHeads, headKind, headHiddenSize, mlpHiddenSize, rank, draftVocab, draftHeads, but got "mtpHead".');
      await expectThrowNoLeak(() => loadLlama2c(file, null as never), 'loadLlama2c: options must be an object, but got null.');
    });
  });
});
