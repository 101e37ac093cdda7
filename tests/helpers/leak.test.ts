/** The leak helpers themselves: a leak fails, a clean call passes, and a failure inside `fn` is the one reported. */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { useCpu } from './backend.js';
import { expectNoLeak, expectThrowNoLeak } from './leak.js';

beforeAll(useCpu);

describe('expectNoLeak', () => {
  it('passes a clean call through and disposes the tensors it returned', async () => {
    const before = tf.memory().numTensors;
    const out = await expectNoLeak(() => ({ a: tf.scalar(1), b: [tf.zeros([2])], n: 3 }));
    expect(out.n).toBe(3);
    expect(out.a.isDisposed && out.b[0]!.isDisposed).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('fails when the call leaves a tensor behind, naming the count', async () => {
    let kept: tf.Tensor | undefined;
    await expect(expectNoLeak(() => void (kept = tf.scalar(1)))).rejects.toThrow(/live tensors after the call: expected \d+ to be \+?\d+/);
    kept!.dispose();
  });

  it('reports the failed assertion inside the call, not the tensors it left behind', async () => {
    let kept: tf.Tensor | undefined;
    const failing = expectNoLeak(async () => {
      kept = tf.tensor1d([1, 2]); // left alive by the interrupted call
      expect(await kept.data(), 'the values read back').toEqual(new Float32Array([1, 3]));
    });
    await expect(failing).rejects.toThrow(/^the values read back: expected Float32Array/);
    kept!.dispose();
  });

  it('reports any other error of the call as it is (sync and async)', async () => {
    await expect(expectNoLeak(() => { throw new RangeError('sync failure'); })).rejects.toThrow(new RangeError('sync failure'));
    await expect(expectNoLeak(async () => Promise.reject(new Error('async failure')))).rejects.toThrow('async failure');
  });
});

describe('expectThrowNoLeak', () => {
  it('passes when the call throws the message and leaves nothing', async () => {
    await expectThrowNoLeak(() => tf.tidy(() => { tf.scalar(1); throw new Error('f: bad argument'); }), 'bad argument');
  });

  it('fails when the call throws but leaves a tensor behind', async () => {
    let kept: tf.Tensor | undefined;
    const leaking = () => { kept = tf.scalar(1); throw new Error('f: bad argument'); };
    await expect(expectThrowNoLeak(leaking, 'bad argument')).rejects.toThrow(/expected \d+ to be \+?\d+/);
    kept!.dispose();
  });
});
