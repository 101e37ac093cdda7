/**
 * The wasm training kernels as a part of the package: an app that decodes (or only computes the
 * loss) bundles none of them, an app that registers them bundles no layer class and no decoder
 * (esbuild on the built package, resolved through `exports`, tfjs external, as
 * tests/package/treeshake.test.ts does); and registering them before the wasm backend is
 * imported fails with the import named, registering nothing. This process never imports the
 * wasm backend.
 */
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { build } from 'esbuild';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerWasmTrainingKernels } from '../../src/index.js';
import { ROOT } from '../../tools/browser/bundle.js';

/** Code of the kernels, by the names their source carries. */
// (the loss's error message names registerWasmTrainingKernels: not a marker; the decoders' own fused
// kernels read the wasm heap too, so the heap accessors are not markers either)
const KERNEL_MARKERS = ['tfjs-mtp.wasmTrainingKernel', 'unsortedSegmentSum', 'splitAlong'];
const LAYER_MARKERS = ['MultiTokenHead', 'SharedUnembedding', 'LightweightOffsetHead', 'SequentialMtpHead'];
const DECODER_MARKERS = ['speculativeDecode', 'greedyDecode', 'blockwiseDecode', 'fromLayersModel'];

let app: string;

async function bundle(name: string, source: string): Promise<string> {
  const entry = join(app, `${name}.js`);
  writeFileSync(entry, source);
  const out = await build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'browser', target: 'es2020', external: ['@tensorflow/*'], logLevel: 'silent', write: false });
  return out.outputFiles[0]!.text;
}

const found = (code: string, markers: readonly string[]) => markers.filter((m) => code.includes(m));

beforeAll(() => {
  if (!existsSync(join(ROOT, 'dist/index.js'))) throw new Error('tests/training: dist/index.js is missing; run `npm run build` first (`npm test` does).');
  app = mkdtempSync(join(tmpdir(), 'tfjs-mtp-wasm-app-'));
  mkdirSync(join(app, 'node_modules'));
  symlinkSync(ROOT, join(app, 'node_modules/tfjs-mtp'), 'dir');
});

afterAll(() => {
  if (app) rmSync(app, { recursive: true, force: true });
});

describe('tree-shaking of the wasm training kernels (built package)', () => {
  it('an app importing only the decoders bundles no kernel', async () => {
    const code = await bundle('decoders', "import { speculativeDecode, greedyDecode } from 'tfjs-mtp';\nexport const run = [speculativeDecode, greedyDecode];\n");
    expect(code).toContain('speculativeDecode');
    expect(found(code, KERNEL_MARKERS)).toEqual([]);
  });

  it('an app importing only the loss bundles no kernel, no layer class and no decoder', async () => {
    const code = await bundle('loss', "import { multiTokenLossFunction } from 'tfjs-mtp';\nexport const loss = multiTokenLossFunction;\n");
    expect(code).toContain('multiTokenLossFunction');
    expect(found(code, [...KERNEL_MARKERS, ...LAYER_MARKERS, ...DECODER_MARKERS])).toEqual([]);
  });

  it('an app importing only registerWasmTrainingKernels bundles no layer class and no decoder', async () => {
    const code = await bundle('kernels', "import { registerWasmTrainingKernels } from 'tfjs-mtp';\nexport const register = registerWasmTrainingKernels;\n");
    expect(found(code, KERNEL_MARKERS)).toEqual(KERNEL_MARKERS);
    expect(found(code, [...LAYER_MARKERS, ...DECODER_MARKERS])).toEqual([]);
  });
});

describe('registerWasmTrainingKernels without the wasm backend', () => {
  it('names the import to add, and registers nothing', () => {
    expect(() => registerWasmTrainingKernels()).toThrow(
      "registerWasmTrainingKernels: the wasm backend's own kernels must be registered first (import '@tensorflow/tfjs-backend-wasm' before calling), but 'BatchMatMul', '_FusedMatMul', 'Transpose', 'SplitV', 'Unpack', 'Sum' are not registered for 'wasm'.",
    );
    expect(() => registerWasmTrainingKernels({ matMul: false })).toThrow("but 'SplitV', 'Unpack', 'Sum' are not registered for 'wasm'.");
    expect(tf.getKernel(tf.UnsortedSegmentSum, 'wasm')).toBeUndefined();
  });
});
