/**
 * tools/step_cost.ts, the bench's step-cost instruments: the timing proxy decodes exactly like
 * the model it wraps, passes on the optional fast-path members only when the model has them,
 * charges one step per forward, and the kernel counter counts what the engine dispatches.
 * tools/llama2c_files.ts finds a llama2.c model's two files in a folder.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode, type MultiTokenModel } from '../../src/index.js';
import { llama2cFiles } from '../../tools/llama2c_files.js';
import { countKernels, instrument, StepRecorder, timeReadbacks } from '../../tools/step_cost.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak } from '../helpers/leak.js';

useCpu();

/** Counts to V: the next token is always (last + 1) mod V, at every offset j it is (last + 1 + j) mod V. */
class CountingModel implements MultiTokenModel {
  readonly numHeads = 3;
  readonly vocabSize = 16;
  readonly maxLength = 64;
  length = 0;
  private ids: number[] = [];
  forward(tokenIds: readonly number[]): tf.Tensor2D {
    this.ids = [...this.ids.slice(0, this.length), ...tokenIds];
    this.length = this.ids.length;
    return tf.tensor2d(this.ids.slice(-tokenIds.length), [tokenIds.length, 1]); // [n, 1]: the token itself
  }
  headLogits(states: tf.Tensor2D, offsets: readonly number[]): tf.Tensor3D {
    return tf.tidy(() => {
      const last = tf.cast(tf.reshape(states, [-1, 1]), 'int32'); // [m, 1]
      const next = tf.mod(tf.add(last, tf.add(tf.tensor1d(offsets.map((j) => j), 'int32'), 1)), this.vocabSize); // [m, offsets]
      return tf.mul(tf.oneHot(tf.cast(next, 'int32'), this.vocabSize), 10) as tf.Tensor3D; // [m, offsets, V]
    });
  }
  truncate(length: number): void {
    this.length = length;
  }
}

describe('instrument', () => {
  it('decodes the same tokens as the bare model, one step per forward after the prompt', async () => {
    const recorder = new StepRecorder();
    const bare = await speculativeDecode(new CountingModel(), [1, 2], { maxNewTokens: 12 });
    recorder.begin();
    const timed = await expectNoLeak(() => timeReadbacks(recorder, () => speculativeDecode(instrument(new CountingModel(), recorder), [1, 2], { maxNewTokens: 12 })));
    recorder.end();
    expect(timed.tokens).toEqual(bare.tokens);
    expect(recorder.steps()).toHaveLength(timed.stats.forwards - 1);
    for (const s of recorder.steps()) {
      expect(s.forward).toBeGreaterThan(0);
      expect(s.heads).toBeGreaterThan(0);
      expect(s.total).toBeGreaterThanOrEqual(s.forward + s.heads + s.rollback);
    }
    const cost = recorder.summary();
    expect(cost.steps).toBe(timed.stats.forwards - 1);
    expect(cost.msPerStep).toBeGreaterThan(0);
  });

  it('passes on headArgmax, beginDecode and endDecode only when the model has them', () => {
    const plain = instrument(new CountingModel(), new StepRecorder()) as unknown as Record<string, unknown>;
    expect(['headArgmax', 'beginDecode', 'endDecode'].filter((m) => m in plain)).toEqual([]);
    const calls: string[] = [];
    const fast = Object.assign(new CountingModel(), {
      headArgmax: () => (calls.push('headArgmax'), tf.zeros([1, 1], 'int32') as tf.Tensor2D),
      beginDecode: () => void calls.push('beginDecode'),
      endDecode: () => void calls.push('endDecode'),
    });
    const proxy = instrument(fast, new StepRecorder()) as CountingModel & typeof fast;
    proxy.beginDecode();
    proxy.headArgmax();
    proxy.endDecode();
    expect(calls).toEqual(['beginDecode', 'headArgmax', 'endDecode']);
  });
});

describe('countKernels', () => {
  it('counts every kernel of a step, the same in two passes, and restores the engine', async () => {
    const counts: number[][] = [];
    for (let pass = 0; pass < 2; pass++) {
      const recorder = new StepRecorder();
      recorder.begin();
      await countKernels(recorder, () => greedyDecode(instrument(new CountingModel(), recorder), [3], { maxNewTokens: 5 }));
      recorder.end();
      counts.push(recorder.steps().map((s) => s.kernels));
    }
    expect(counts[0]).toHaveLength(4);
    expect(counts[0]!.every((n) => n > 0)).toBe(true);
    expect(counts[1]).toEqual(counts[0]);
    // one known kernel (Add) inside the pass is counted once; one after the pass is not
    const recorder = new StepRecorder();
    recorder.begin();
    recorder.newStep(); // the "prompt" step, left out of steps()
    recorder.newStep();
    const [a, b] = [tf.scalar(1), tf.scalar(2)];
    await countKernels(recorder, async () => tf.dispose(tf.add(a, b)));
    tf.dispose(tf.add(a, b));
    tf.dispose([a, b]);
    recorder.end();
    expect(recorder.steps().map((s) => s.kernels)).toEqual([1]);
  });
});

describe('llama2cFiles', () => {
  it('finds the checkpoint and the tok*.bin tokenizer, and null when one is missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'llama2c-'));
    try {
      writeFileSync(join(dir, 'tok512.bin'), '');
      expect(llama2cFiles(dir)).toBeNull();
      writeFileSync(join(dir, 'stories260K.bin'), '');
      writeFileSync(join(dir, 'README.md'), '');
      expect(llama2cFiles(dir)).toEqual({ checkpoint: join(dir, 'stories260K.bin'), tokenizer: join(dir, 'tok512.bin') });
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});
