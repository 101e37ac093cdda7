/**
 * Objects from a second copy of tfjs are named as such where they enter the package: a layer
 * given as `tiedTo`, a symbolic tensor given to a layer's `apply`, a model given to a decoder.
 * The second copy is real: tfjs-core's and tfjs-layers' node bundles copied into a temporary
 * `node_modules` (the layers copy stamped with another version) and required from there, as an
 * app with two installs would load them. Its tensors are tensors here (tfjs-core shares its
 * `Tensor` class between copies); a tensor-shaped object without a tensor's methods is named too.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, multiTokenHead, sharedUnembedding } from '../../src/index.js';
import { useCpu } from '../helpers/backend.js';
import { TableModel } from '../helpers/toy_models.js';
import { ROOT } from '../../tools/browser/bundle.js';

/** The version stamped into the second copy of tfjs-layers (what a LayersModel records of it). */
const OTHER_LAYERS = '4.21.0';
const OURS = tf.version_core;
const FIX = 'install one copy (npm dedupe, or list tfjs as peer dependencies; a linked checkout of tfjs-mtp brings its own: install its `npm pack` tarball instead).';

let dir: string;
let other: { tf: typeof tf; tfl: typeof tfl };

/** Copies one package's node bundle (and its package.json) into `dir/node_modules`, optionally rewriting its version. */
function copyPackage(name: string, bundle: string, version?: string): void {
  const from = join(ROOT, 'node_modules', name);
  const to = join(dir, 'node_modules', name);
  mkdirSync(join(to, 'dist'), { recursive: true });
  copyFileSync(join(from, 'package.json'), join(to, 'package.json'));
  const code = readFileSync(join(from, 'dist', bundle), 'utf8');
  writeFileSync(join(to, 'dist', bundle), version === undefined ? code : code.replace(/var version = '[^']+';/g, `var version = '${version}';`));
}

beforeAll(async () => {
  await useCpu();
  dir = mkdtempSync(join(tmpdir(), 'tfjs-mtp-two-copies-'));
  copyPackage('@tensorflow/tfjs-core', 'tf-core.node.js');
  copyPackage('@tensorflow/tfjs-layers', 'tf-layers.node.js', OTHER_LAYERS);
  const require = createRequire(join(dir, 'app.cjs'));
  other = { tf: require('@tensorflow/tfjs-core') as typeof tf, tfl: require('@tensorflow/tfjs-layers') as typeof tfl };
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a second copy of tfjs', () => {
  it('is a real second copy: its layers fail this copy instanceof checks, its tensors pass them', () => {
    expect(other.tfl.version_layers).toBe(OTHER_LAYERS);
    expect(other.tfl.layers.embedding({ inputDim: 4, outputDim: 2 })).not.toBeInstanceOf(tfl.layers.Layer);
    expect(other.tfl.input({ shape: [3] })).not.toBeInstanceOf(tfl.SymbolicTensor);
    const t = other.tf.tensor1d([1, 2], 'int32');
    expect(t).toBeInstanceOf(tf.Tensor);
    t.dispose();
  });

  it('SharedUnembedding and MultiTokenHead name a tiedTo layer from it, and both versions of tfjs-layers', () => {
    const embed = other.tfl.layers.embedding({ inputDim: 8, outputDim: 4 });
    const message = `SharedUnembedding: tiedTo is a layer (Embedding) from another copy of @tensorflow/tfjs-layers (version unknown; this package uses ${tfl.version_layers}): ${FIX}`;
    expect(() => sharedUnembedding({ vocabSize: 8, tiedTo: embed as unknown as tfl.layers.Layer })).toThrow(message);
    expect(() => multiTokenHead({ numHeads: 2, vocabSize: 8, tiedTo: embed as unknown as tfl.layers.Layer })).toThrow(message);
  });

  it('a layer applied to a symbolic tensor from it names the tensor', () => {
    const ids = other.tfl.input({ shape: [null], dtype: 'int32' });
    const hidden = other.tfl.layers.embedding({ inputDim: 8, outputDim: 4 }).apply(ids) as unknown as tfl.SymbolicTensor;
    expect(() => sharedUnembedding({ vocabSize: 8 }).apply(hidden)).toThrow(
      `SharedUnembedding: inputs is a symbolic tensor (float32 [null, null, 4]) from another copy of @tensorflow/tfjs-layers (version unknown; this package uses ${tfl.version_layers}): ${FIX}`,
    );
    expect(() => multiTokenHead({ numHeads: 2, vocabSize: 8 }).apply([hidden])).toThrow(
      `Layer.apply: inputs[0] is a symbolic tensor (float32 [null, null, 4]) from another copy of @tensorflow/tfjs-layers (version unknown; this package uses ${tfl.version_layers}): ${FIX}`,
    );
  });

  it('a decoder names a model from it with its recorded version, and a tensor-shaped object that is no tensor', async () => {
    const ids = other.tfl.input({ shape: [null], dtype: 'int32' });
    const model = other.tfl.model({ inputs: ids, outputs: other.tfl.layers.embedding({ inputDim: 8, outputDim: 4 }).apply(ids) as tfl.SymbolicTensor });
    await expect(greedyDecode(model as never, [1])).rejects.toThrow(
      `greedyDecode: model is a model (Model) from another copy of @tensorflow/tfjs-layers (${OTHER_LAYERS}; this package uses ${tfl.version_layers}): ${FIX}`,
    );
    model.dispose();
    const table = new TableModel([[[0, 1], [1, 0]]]);
    try {
      const tensorInfo = { dataId: {}, shape: [2], dtype: 'int32' };
      await expect(greedyDecode(table, tensorInfo as never)).rejects.toThrow(
        `greedyDecode: prompt is a tensor (int32 [2]) from another copy of @tensorflow/tfjs-core (version unknown; this package uses ${OURS}): ${FIX}`,
      );
      const tensor = other.tf.tensor1d([1, 0], 'int32'); // a tensor, as the usual message says
      await expect(greedyDecode(table, tensor as never)).rejects.toThrow('greedyDecode: prompt must be an array or a typed array of token ids, but got an object (Object).');
      tensor.dispose();
    } finally {
      table.dispose();
    }
  });

  it("this copy's own objects pass, and other objects keep their usual message", () => {
    const embed = tfl.layers.embedding({ inputDim: 8, outputDim: 4 });
    expect(() => sharedUnembedding({ vocabSize: 8, tiedTo: embed })).not.toThrow();
    expect(() => sharedUnembedding({ vocabSize: 8, tiedTo: {} as unknown as string })).toThrow(
      'SharedUnembedding: tiedTo must be an Embedding layer or a non-empty layer name, but got an object (Object).',
    );
  });
});
