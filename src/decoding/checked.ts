/**
 * A model's outputs, checked where they enter a decoder. A `MultiTokenModel` is an interface
 * anyone can implement, and a wrong shape or dtype would otherwise surface deep inside tfjs — or
 * not at all (logits wider than the vocabulary decode as token 0; float "ids" land in the
 * output). Each call of the wrapped model checks what it returned — a tensor, of the rank, shape
 * and dtype its contract states — and throws naming the decoder and the method. Only shapes and
 * dtypes are read (no readback), so the check costs microseconds per call; a value that only the
 * readback shows (an id outside the vocabulary) is reported by the decoders after it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { show } from '../internal/errors.js';
import type { MultiTokenModel, TopKCandidates, TreeCandidates } from './model.js';

/** Throws unless `t` is a tensor of `shape` (null: any size on that axis) and, when given, `dtype`. */
function expectTensor(fn: string, method: string, t: unknown, shape: readonly (number | null)[], dtype?: tf.DataType): void {
  const want = `a${dtype ? `n ${dtype}` : ''} tensor of shape [${shape.map((d) => d ?? '*').join(', ')}]`;
  if (!(t instanceof tf.Tensor)) {
    throw new TypeError(`${fn}: model.${method} must return ${want}, but returned ${show(t)}.`);
  }
  const ok = t.rank === shape.length && shape.every((d, i) => d === null || t.shape[i] === d) && (dtype === undefined || t.dtype === dtype);
  if (!ok) {
    t.dispose(); // the caller never sees it
    throw new RangeError(`${fn}: model.${method} must return ${want}, but returned ${t.dtype} [${t.shape.join(', ')}].`);
  }
}

/** `model` with every output checked (see the module header); the same members, optional ones only where `model` has them. */
export function checkedModel(fn: string, model: MultiTokenModel): MultiTokenModel {
  const V = model.vocabSize;
  const checked: MultiTokenModel = {
    get numHeads() {
      return model.numHeads;
    },
    get vocabSize() {
      return model.vocabSize;
    },
    get maxLength() {
      return model.maxLength;
    },
    get length() {
      return model.length;
    },
    forward(ids) {
      const states = model.forward(ids);
      expectTensor(fn, 'forward', states, [ids.length, null]);
      return states;
    },
    headLogits(states, offsets) {
      const logits = model.headLogits(states, offsets);
      expectTensor(fn, 'headLogits', logits, [states.shape[0], offsets.length, V]);
      return logits;
    },
    truncate: (length) => model.truncate(length),
  };
  const bind = <K extends keyof MultiTokenModel>(key: K, value: MultiTokenModel[K]) => Object.defineProperty(checked, key, { value, enumerable: true });
  if (model.draftVocab !== undefined) Object.defineProperty(checked, 'draftVocab', { get: () => model.draftVocab, enumerable: true });
  if (model.stopTokens !== undefined) Object.defineProperty(checked, 'stopTokens', { get: () => model.stopTokens, enumerable: true });
  if (model.headArgmax) {
    bind('headArgmax', (states: tf.Tensor2D, n: number) => {
      const ids = model.headArgmax!(states, n);
      expectTensor(fn, 'headArgmax', ids, [states.shape[0], n], 'int32');
      return ids;
    });
  }
  const pair = (method: string, out: TopKCandidates, m: number, n: number, k: number) => {
    try {
      expectTensor(fn, `${method} ids`, out?.ids, [m, n, k], 'int32');
      expectTensor(fn, `${method} logProbs`, out?.logProbs, [m, n, k], 'float32');
    } catch (error) {
      tf.dispose([out?.ids, out?.logProbs].filter((t) => t instanceof tf.Tensor));
      throw error;
    }
    return out;
  };
  if (model.headTopK) bind('headTopK', (s: tf.Tensor2D, n: number, k: number) => pair('headTopK', model.headTopK!(s, n, k), s.shape[0], n, k));
  if (model.draftTopK) bind('draftTopK', (s: tf.Tensor2D, r: tf.Tensor1D, n: number, k: number) => pair('draftTopK', model.draftTopK!(s, r, n, k), s.shape[0], n, k));
  if (model.draftArgmax) {
    bind('draftArgmax', (s: tf.Tensor2D, r: tf.Tensor1D, n: number) => {
      const ids = model.draftArgmax!(s, r, n);
      expectTensor(fn, 'draftArgmax', ids, [s.shape[0], n], 'int32');
      return ids;
    });
  }
  if (model.draftLogits) {
    bind('draftLogits', (s: tf.Tensor2D, r: tf.Tensor1D, n: number, choose?: (column: number, logits: tf.Tensor2D) => tf.Tensor1D) => {
      const logits = model.draftLogits!(s, r, n, choose);
      expectTensor(fn, 'draftLogits', logits, [s.shape[0], n, V]);
      return logits;
    });
  }
  if (model.headTree) {
    bind('headTree', (s: tf.Tensor2D, roots: tf.Tensor1D, depth: number, k: number): TreeCandidates => {
      const out = model.headTree!(s, roots, depth, k);
      const G = k + (depth - 1) * k * k;
      try {
        expectTensor(fn, 'headTree ids', out?.ids, [s.shape[0], G], 'int32');
        expectTensor(fn, 'headTree parents', out?.parents, [s.shape[0], G], 'int32');
        expectTensor(fn, 'headTree scores', out?.scores, [s.shape[0], G], 'float32');
      } catch (error) {
        tf.dispose([out?.ids, out?.parents, out?.scores].filter((t) => t instanceof tf.Tensor));
        throw error;
      }
      return out;
    });
  }
  if (model.forwardTree) {
    bind('forwardTree', (ids: readonly number[], parents: readonly number[]) => {
      const states = model.forwardTree!(ids, parents);
      expectTensor(fn, 'forwardTree', states, [ids.length, null]);
      return states;
    });
  }
  if (model.keepRows) bind('keepRows', (rows: readonly number[]) => model.keepRows!(rows));
  if (model.beginDecode) bind('beginDecode', () => model.beginDecode!());
  if (model.endDecode) bind('endDecode', () => model.endDecode!());
  return checked;
}
