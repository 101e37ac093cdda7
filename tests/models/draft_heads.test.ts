/**
 * Draft heads on frozen stories260K (cpu): attaching `mlp` heads through `loadLlama2c`'s head
 * options, training only them (offset 0 bit-identical before and after), the `exportDraftHeads`
 * file round-tripping through `loadLlama2c({ draftHeads })` and `attachDraftHeads`, the
 * base-model fingerprint refusing another model, and one error per bad file — all leak-free.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MultiTokenHead } from '../../src/layers/index.js';
import { attachDraftHeads, baseFingerprint, exportDraftHeads, readDraftHeads } from '../../src/models/draft_heads.js';
import { trainDraftHeads } from '../../src/models/train_heads/train.js';
import { CachedTransformer } from '../../src/models/index.js';
import { loadLlama2c } from '../../src/models/llama2c.js';
import { greedyDecode, speculativeDecode } from '../../src/decoding/index.js';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { useCpu } from '../helpers/backend.js';
import { readManifest, withManifest } from '../helpers/heads_file.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';
import { readStories, storiesAvailable, storiesReference } from '../helpers/stories.js';

const available = storiesAvailable('draft_heads.test.ts');
const H = 16; // a small mlp width keeps the test fast

function headOf(model: LayersModel): MultiTokenHead {
  return model.getLayer('mtp_head') as unknown as MultiTokenHead;
}

/** Logits of every offset at every prompt position, read back. */
function allLogits(model: LayersModel, ids: number[]): Float32Array[] {
  const cached = new CachedTransformer(model);
  try {
    return tf.tidy(() => {
      const states = cached.forward(ids);
      const logits = cached.headLogits(states, Array.from({ length: cached.numHeads }, (_, j) => j)); // [m, k, V]
      return tf.unstack(logits, 1).map((t) => t.dataSync() as Float32Array);
    });
  } finally {
    cached.dispose();
  }
}

describe.skipIf(!available)('draft heads on frozen stories260K', () => {
  let file: Uint8Array;
  let prompt: number[];
  beforeAll(async () => {
    await useCpu();
    file = readStories('checkpoint');
    prompt = storiesReference().promptIds;
  });

  describe('attach and train only the heads', () => {
    let model: LayersModel;
    beforeAll(async () => {
      ({ model } = await loadLlama2c(file, { mtpHeads: 4, headKind: 'mlp', headHiddenSize: H }));
    });
    afterAll(() => model.dispose());

    it('builds mlp draft offsets of the asked width that start as offset 0', () => {
      const head = headOf(model);
      expect(head.headKinds).toEqual(['identity', 'mlp', 'mlp', 'mlp']);
      expect(head.offsetHeads[1]!.headHiddenSize).toBe(H);
      const [l0, l1, l2, l3] = allLogits(model, prompt);
      expect(l1).toEqual(l0);
      expect(l2).toEqual(l0);
      expect(l3).toEqual(l0);
    });

    it('training the draft heads (trainDraftHeads) leaves offset 0 bit-identical and moves the drafts', async () => {
      const before = allLogits(model, prompt);
      const fingerprint = await baseFingerprint(model);
      // a tiny given corpus: the prompt repeated, and once
      await expectNoLeak(() => trainDraftHeads(model, { sequences: [[...prompt, ...prompt], prompt], steps: 5, batchSize: 64, heldOut: 0, learningRate: 1e-2, targets: 'mix' }));
      const after = allLogits(model, prompt);
      expect(after[0]).toEqual(before[0]); // offset 0: bit-identical
      for (let j = 1; j < 4; j++) expect(after[j]).not.toEqual(before[j]);
      expect(await baseFingerprint(model)).toBe(fingerprint); // the base weights did not change
    });

    it('exports the heads and loads them back through loadLlama2c({ draftHeads }) and attachDraftHeads, identically', async () => {
      const expected = allLogits(model, prompt);
      const bytes = await expectNoLeak(() => exportDraftHeads(model, { note: 'test' }));
      const parsed = readDraftHeads(bytes);
      expect(parsed.manifest).toMatchObject({ numHeads: 4, kind: 'mlp', headHiddenSize: H, activation: 'swish', base: { hiddenSize: 64, vocabSize: 512 }, training: { note: 'test' } });
      expect(bytes.length).toBeLessThan(16 + 1024 + 4 * 3 * (2 * 64 * H + H + 64) + 4096);

      const before = tf.memory().numTensors;
      const { model: loaded } = await loadLlama2c(file, { draftHeads: bytes });
      expect(allLogits(loaded, prompt)).toEqual(expected);
      loaded.dispose();
      expect(tf.memory().numTensors).toBe(before);

      const { model: fresh } = await loadLlama2c(file, { mtpHeads: 4, headKind: 'mlp', headHiddenSize: H });
      try {
        // a Node Buffer viewing the middle of a larger allocation (what readFileSync may return)
        const pooled = new Uint8Array(bytes.length + 16);
        pooled.set(bytes, 8);
        const view = Buffer.from(pooled.buffer, 8, bytes.length);
        const manifest = await expectNoLeak(() => attachDraftHeads(fresh, view));
        expect(manifest.kind).toBe('mlp');
        expect(allLogits(fresh, prompt)).toEqual(expected);
      } finally {
        fresh.dispose();
      }
    });

    it('refuses heads trained on another base model, a mismatched head and conflicting options, naming the field, with no leak', async () => {
      const bytes = await exportDraftHeads(model);
      const changed = file.slice();
      new DataView(changed.buffer).setFloat32(28 + 4 * 100, 0.5, true); // one weight of token_embedding
      await expectThrowNoLeak(() => loadLlama2c(changed, { draftHeads: bytes }), /^loadLlama2c: options\.draftHeads were trained on another base model: base\.fingerprint must be this model's [0-9a-f]{16}, but got [0-9a-f]{16}\.$/);
      const { model: residual } = await loadLlama2c(file, { mtpHeads: 4 });
      try {
        await expectThrowNoLeak(() => attachDraftHeads(residual, bytes), "attachDraftHeads: heads kind must match the model's (\"residual\"), but got \"mlp\".");
      } finally {
        residual.dispose();
      }
      const { model: wide } = await loadLlama2c(file, { mtpHeads: 4, headKind: 'mlp', headHiddenSize: 2 * H });
      try {
        await expectThrowNoLeak(() => attachDraftHeads(wide, bytes), `attachDraftHeads: heads headHiddenSize must match the model's (${2 * H}), but got ${H}.`);
      } finally {
        wide.dispose();
      }
      await expectThrowNoLeak(() => loadLlama2c(file, { draftHeads: bytes, mtpHeads: 3 }), 'loadLlama2c: options.mtpHeads must match options.draftHeads (4) or be omitted, but got 3.');
      await expectThrowNoLeak(() => loadLlama2c(file, { draftHeads: bytes, headKind: 'lowRank' }), 'loadLlama2c: options.headKind must match options.draftHeads ("mlp") or be omitted, but got "lowRank".');
      await expectThrowNoLeak(() => loadLlama2c(file, { mtpHeads: 4, headKind: 'mlp', mlpHiddenSize: 0 }), 'loadLlama2c: options.mlpHiddenSize must be a positive integer at most 65536, but got 0.');
    });

    it('rejects a bad file before allocating anything, naming the field', async () => {
      const bytes = await exportDraftHeads(model);
      const { manifest } = readManifest(bytes);
      const rewrite = (m: Record<string, unknown>, tail?: Uint8Array): Uint8Array => withManifest(bytes, m, tail);
      const where = 'loadLlama2c: options.draftHeads';
      const load = (heads: Uint8Array) => loadLlama2c(file, { draftHeads: heads });
      await expectThrowNoLeak(() => load(Uint8Array.from([1, 2, 3])), `${where}: file must start with the magic "MTPHEADS", but got`);
      const huge = bytes.slice();
      new DataView(huge.buffer).setUint32(8, 0xffffffff, true);
      await expectThrowNoLeak(() => load(huge), `${where}: manifest length must be at most`);
      await expectThrowNoLeak(() => load(rewrite({ ...manifest, format: 'other' })), `${where}: manifest.format must be "tfjs-mtp-draft-heads", but got "other".`);
      await expectThrowNoLeak(() => load(rewrite({ ...manifest, numHeads: 1000 })), `${where}: manifest.numHeads must be an integer in [2, 64], but got 1000.`);
      await expectThrowNoLeak(() => load(rewrite({ ...manifest, kind: 'huge' })), `${where}: manifest.kind must be one of identity, linear, residual, lowRank, mlp, sequential, but got "huge".`);
      await expectThrowNoLeak(() => load(rewrite({ ...manifest, mlpHiddenSize: 1e9 })), `${where}: manifest.mlpHiddenSize must be a positive integer at most 65536, but got 1000000000.`);
      await expectThrowNoLeak(() => load(rewrite({ ...manifest, base: { ...(manifest['base'] as object), fingerprint: 'x' } })), `${where}: manifest.base.fingerprint must be 16 lowercase hex digits, but got "x".`);
      const weights = [...(manifest['weights'] as Array<{ name: string; shape: number[] }>)];
      weights[1] = { name: 'offset1/b1', shape: [H + 1] };
      await expectThrowNoLeak(() => load(rewrite({ ...manifest, weights })), `${where}: manifest.weights[1] must be { name: "offset1/b1", shape: [${H}] }`);
      await expectThrowNoLeak(() => load(bytes.subarray(0, bytes.length - 4)), `${where}: file size must be ${bytes.length} bytes (manifest + float32 weights), but got ${bytes.length - 4}.`);
      const nan = bytes.slice();
      new DataView(nan.buffer).setFloat32(nan.length - 4, Number.NaN, true);
      await expectThrowNoLeak(() => load(nan), `${where}: weight offset3/b2[63] must be a finite float32, but got NaN.`);
    });
  });

  it.each([
    ['mlp-k4', 4],
    ['mlp-k4-w512', 4],
    ['sequential-k4', 4],
    ['sequential-k6', 6],
  ] as const)('the committed fixtures/stories260k-heads/%s.bin attaches to stories260K and drafts: output = greedy, τ well above untrained heads', async (name, k) => {
    const heads = new Uint8Array(readFileSync(fileURLToPath(new URL(`../../fixtures/stories260k-heads/${name}.bin`, import.meta.url))));
    const before = tf.memory().numTensors;
    const { model } = await loadLlama2c(file, { draftHeads: heads });
    const cached = new CachedTransformer(model);
    try {
      expect(cached.numHeads).toBe(k); // the file sets k
      const greedy = await greedyDecode(cached, prompt, { maxNewTokens: 60 });
      const fast = await speculativeDecode(cached, prompt, { maxNewTokens: 60, draftLength: k - 1 });
      expect(fast.tokens).toEqual(greedy.tokens);
      // untrained (identity-start) heads draft what offset 0 predicts at the same position: τ ≈ 1
      expect(fast.stats.meanAcceptedLength).toBeGreaterThan(1.5);
    } finally {
      cached.dispose();
      model.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
