/** Every guard fires, before any work, with a message naming the argument and the value. */
import * as tfl from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blockwiseDecode, fromLayersModel, greedyDecode, speculativeDecode, type SpeculativeOptions } from '../../src/decoding/index.js';
import { TableModel } from '../helpers/toy_models.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';

beforeAll(useCpu);

const V = 5;
let model: TableModel;
beforeAll(() => {
  const table = Array.from({ length: V }, () => new Array<number>(V).fill(0));
  model = new TableModel([table, table, table]); // k = 3
});
afterAll(() => model.dispose());

describe('speculativeDecode rejects bad input', () => {
  it.each<[string, number[], SpeculativeOptions, string]>([
    ['empty prompt', [], {}, 'speculativeDecode: prompt must contain at least one token, but got [].'],
    ['id ≥ vocab', [1, 5], {}, 'speculativeDecode: prompt[1] must be an integer token id in [0, 5), but got 5.'],
    ['negative id', [-1], {}, 'speculativeDecode: prompt[0] must be an integer token id in [0, 5), but got -1.'],
    ['non-integer id', [1.5], {}, 'speculativeDecode: prompt[0] must be an integer token id in [0, 5), but got 1.5.'],
    ['NaN id', [NaN], {}, 'speculativeDecode: prompt[0] must be an integer token id in [0, 5), but got NaN.'],
    ['maxNewTokens 0', [1], { maxNewTokens: 0 }, 'speculativeDecode: options.maxNewTokens must be a positive integer, but got 0.'],
    ['maxNewTokens 2.5', [1], { maxNewTokens: 2.5 }, 'speculativeDecode: options.maxNewTokens must be a positive integer, but got 2.5.'],
    ['temperature < 0', [1], { acceptance: 'sampling', temperature: -0.5 }, 'speculativeDecode: options.temperature must be a finite number ≥ 0, but got -0.5.'],
    ['temperature with greedy', [1], { temperature: 0.7 }, "speculativeDecode: options.temperature must be 0 with acceptance 'greedy' (use 'sampling' to sample), but got 0.7."],
    ['topP 0', [1], { acceptance: 'sampling', topP: 0 }, 'speculativeDecode: options.topP must be in (0, 1], but got 0.'],
    ['topP 1.5', [1], { acceptance: 'sampling', topP: 1.5 }, 'speculativeDecode: options.topP must be in (0, 1], but got 1.5.'],
    ['topK 0', [1], { acceptance: 'sampling', topK: 0 }, 'speculativeDecode: options.topK must be a positive integer, but got 0.'],
    ['draftLength = k', [1], { draftLength: 3 }, "speculativeDecode: options.draftLength must be 'auto' or an integer in [0, numHeads - 1 = 2], but got 3."],
    ['unknown acceptance', [1], { acceptance: 'fast' as 'greedy' }, "speculativeDecode: options.acceptance must be 'greedy', 'sampling' or 'typical', but got \"fast\"."],
    ['stop token out of range', [1], { stopTokens: [9] }, 'speculativeDecode: options.stopTokens[0] must be an integer token id in [0, 5), but got 9.'],
    ['seed not an integer', [1], { seed: 0.5 }, 'speculativeDecode: options.seed must be an integer in [0, 4294967295], but got 0.5.'],
    ['seed beyond 32 bits', [1], { seed: 2 ** 40 }, 'speculativeDecode: options.seed must be an integer in [0, 4294967295], but got 1099511627776.'],
    ['negative seed', [1], { seed: -1 }, 'speculativeDecode: options.seed must be an integer in [0, 4294967295], but got -1.'],
    ['signal without throwIfAborted', [1], { signal: { aborted: false } as AbortSignal }, 'speculativeDecode: options.signal must be an AbortSignal (with a boolean aborted and a throwIfAborted method), but got an object (Object).'],
    ['stopTokens a string', [1], { stopTokens: '1' as unknown as number[] }, 'speculativeDecode: options.stopTokens must be an array or a typed array of token ids, but got "1".'],
    ['yieldEveryMs negative', [1], { yieldEveryMs: -1 }, 'speculativeDecode: options.yieldEveryMs must be a number ≥ 0, but got -1.'],
    ['yieldEveryMs NaN', [1], { yieldEveryMs: NaN }, 'speculativeDecode: options.yieldEveryMs must be a number ≥ 0, but got NaN.'],
    ['posteriorThreshold 0', [1], { acceptance: 'typical', posteriorThreshold: 0 }, 'speculativeDecode: options.posteriorThreshold must be in (0, 1], but got 0.'],
    ['onToken not a function', [1], { onToken: 3 as unknown as () => void }, 'speculativeDecode: options.onToken must be a function, but got 3.'],
  ])('%s', async (_, prompt, options, message) => {
    const before = model.forwards;
    await expectNoLeak(async () => {
      await expect(speculativeDecode(model, prompt, options)).rejects.toThrow(message);
    });
    expect(model.forwards).toBe(before); // nothing ran
  });

  it('an already-aborted signal: rejects with the signal\'s reason (whatever it is), before any work', async () => {
    await expect(speculativeDecode(model, [1], { signal: AbortSignal.abort('user left') })).rejects.toBe('user left');
    const reason = new Error('closed the tab');
    await expect(greedyDecode(model, [1], { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
  });

  it.each([
    ['greedyDecode', { maxTokens: 3 }, 'greedyDecode: options has no option "maxTokens" (did you mean "maxNewTokens"?); its options are maxNewTokens, temperature, topK, topP, seed, stopTokens, signal, onToken, yieldEveryMs.'],
    ['speculativeDecode', { temprature: 0.5 }, 'speculativeDecode: options has no option "temprature" (did you mean "temperature"?)'],
    ['speculativeDecode', { topk: 5 }, 'speculativeDecode: options has no option "topk" (did you mean "topK"?)'],
    ['speculativeDecode', { acceptence: 'sampling' }, 'speculativeDecode: options has no option "acceptence" (did you mean "acceptance"?)'],
    ['speculativeDecode', { tree: { topK: 2, maxNode: 4 } }, 'speculativeDecode: options.tree has no option "maxNode" (did you mean "maxNodes"?)'],
    ['blockwiseDecode', { blocksize: 2 }, 'blockwiseDecode: options has no option "blocksize" (did you mean "blockSize"?)'],
    ['greedyDecode', { whatever: 1 }, 'greedyDecode: options has no option "whatever"; its options are'],
  ])('%s refuses a misspelled option, naming it and the nearest known one: %j', async (fn, options, message) => {
    const decode = { greedyDecode, speculativeDecode, blockwiseDecode }[fn as 'greedyDecode']!;
    await expectThrowNoLeak(() => decode(model, [1], options as never), message);
  });

  it('a sparse static tree names its hole', async () => {
    const sparse = [[0], , [1]] as number[][]; // eslint-disable-line no-sparse-arrays
    const { ToyAttentionModel } = await import('../helpers/toy_models.js');
    const toy = new ToyAttentionModel({ vocabSize: 9, hidden: 4, numHeads: 3 });
    await expectThrowNoLeak(() => speculativeDecode(toy, [1], { tree: sparse, draftLength: 2 }), 'speculativeDecode: options.tree[1] must be a non-empty array of at most draftLength = 2 ranks, but got undefined.');
    toy.dispose();
    await expectThrowNoLeak(() => greedyDecode(model, [, 1] as number[]), 'greedyDecode: prompt[0] must be an integer token id in [0, 5), but got undefined.'); // eslint-disable-line no-sparse-arrays
  });

  it('a prompt longer than the context', async () => {
    const limited = Object.assign(Object.create(model) as TableModel, { maxLength: 2 });
    await expect(greedyDecode(limited, [1, 2, 3])).rejects.toThrow(
      "greedyDecode: prompt.length must be at most the model's context (maxLength = 2), but got 3.",
    );
  });

  it('an object that is not a MultiTokenModel', async () => {
    await expect(greedyDecode({} as TableModel, [1])).rejects.toThrow('greedyDecode: model.forward must be a function, but got undefined.');
    const noHeads = Object.assign(Object.create(model) as TableModel, { numHeads: 0 });
    await expect(greedyDecode(noHeads, [1])).rejects.toThrow('greedyDecode: model.numHeads must be a positive integer, but got 0.');
  });

  it('blockwise blockSize out of range', async () => {
    await expect(blockwiseDecode(model, [1], { blockSize: 4 })).rejects.toThrow(
      'blockwiseDecode: options.blockSize must be an integer in [1, numHeads = 3], but got 4.',
    );
  });
});

describe('fromLayersModel rejects models that are not [batch, seq, k, vocab]', () => {
  it('a [batch, seq, vocab] next-token model', () => {
    const input = tfl.input({ shape: [null], dtype: 'int32' });
    const x = tfl.layers.embedding({ inputDim: 7, outputDim: 4 }).apply(input) as tfl.SymbolicTensor;
    const out = tfl.layers.dense({ units: 7 }).apply(x) as tfl.SymbolicTensor;
    const m = tfl.model({ inputs: input, outputs: out });
    expect(() => fromLayersModel(m)).toThrow('fromLayersModel: model output must have shape [batch, seq, k, vocab] with known k and vocab, but got [null, null, 7].');
    m.dispose();
  });

  it('a window larger than the fixed input length', () => {
    const input = tfl.input({ shape: [4], dtype: 'int32' });
    const x = tfl.layers.embedding({ inputDim: 7, outputDim: 6 }).apply(input) as tfl.SymbolicTensor;
    const out = tfl.layers.reshape({ targetShape: [4, 2, 3] }).apply(x) as tfl.SymbolicTensor;
    const m = tfl.model({ inputs: input, outputs: out });
    expect(() => fromLayersModel(m, { window: 9 })).toThrow("fromLayersModel: options.window must be at most the model's input length 4, but got 9.");
    expect(() => fromLayersModel(m, { window: 0 })).toThrow('fromLayersModel: options.window must be a positive integer, but got 0.');
    const adapter = fromLayersModel(m);
    expect(() => adapter.truncate(1)).toThrow('fromLayersModel: truncate: length must be an integer in [0, 0], but got 1.');
    m.dispose();
  });

  it('something that is not a LayersModel', () => {
    expect(() => fromLayersModel({} as tfl.LayersModel)).toThrow('fromLayersModel: model must be a tf.LayersModel, but got an object (Object).');
  });
});

describe('messages from deep inside name the argument', () => {
  it('a decode after layersModel.dispose() through fromLayersModel', async () => {
    const input = tfl.input({ shape: [null], dtype: 'int32' });
    const x = tfl.layers.embedding({ inputDim: 7, outputDim: 6 }).apply(input) as tfl.SymbolicTensor;
    const out = tfl.layers.reshape({ targetShape: [-1, 2, 3] }).apply(x) as tfl.SymbolicTensor;
    const m = tfl.model({ inputs: input, outputs: out, name: 'tiny' });
    const adapter = fromLayersModel(m);
    await expect(greedyDecode(adapter, [1], { maxNewTokens: 2 })).resolves.toBeDefined();
    m.dispose();
    await expectNoLeak(async () => {
      await expect(greedyDecode(adapter, [1], { maxNewTokens: 2 })).rejects.toThrow(
        "fromLayersModel: the wrapped LayersModel 'tiny' has been disposed (layersModel.dispose()); wrap a live model to decode with it.",
      );
    });
  });

  it('typed arrays are accepted wherever token ids are: prompt and stopTokens', async () => {
    const counting = new TableModel(
      [0, 1].map((j) => Array.from({ length: V }, (_, a) => Array.from({ length: V }, (_, b) => (b === (a + 1 + j) % V ? 5 : 0)))),
    );
    const plain = await speculativeDecode(counting, [0, 1], { maxNewTokens: 9, stopTokens: [4] });
    const typed = await speculativeDecode(counting, Int32Array.of(0, 1), { maxNewTokens: 9, stopTokens: Uint8Array.of(4) });
    expect(plain.tokens).toEqual([2, 3, 4]);
    expect(typed).toMatchObject({ tokens: plain.tokens, finishReason: 'stop' });
    await expect(greedyDecode(counting, Float32Array.of(0.5))).rejects.toThrow('greedyDecode: prompt[0] must be an integer token id in [0, 5), but got 0.5.');
    await expect(greedyDecode(counting, new DataView(new ArrayBuffer(4)) as unknown as number[])).rejects.toThrow(
      'greedyDecode: prompt must be an array or a typed array of token ids, but got a DataView of length 4.',
    );
    counting.dispose();
  });
});
