/**
 * Saving and loading a `LayersModel` as `model.json` + `weights.bin` in a folder, in node,
 * without tfjs-node (whose `file://` handler this mirrors): `model.save` and
 * `tf.loadLayersModel` with tfjs-core's memory IO handlers, and node's `fs` for the bytes.
 * Also where the committed reference checkpoint lives.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs-layers';
import { MultiTokenHead, parameterReport } from '../src/index.js';
import { type ParameterReport } from '../src/layers/parameter_report.js';
import { loadTransformer } from '../src/models/index.js';

/** Writes `model.json` and `weights.bin` into `dir` (created if missing). */
export async function saveCheckpoint(model: LayersModel, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weights = new Uint8Array(artifacts.weightData as ArrayBuffer);
      const modelJson = {
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version_core}`,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
      };
      writeFileSync(join(dir, 'model.json'), JSON.stringify(modelJson));
      writeFileSync(join(dir, 'weights.bin'), weights);
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: weights.byteLength } };
    }),
  );
}

/** Loads a folder written by {@link saveCheckpoint} (registering the model's layer classes). */
export async function loadCheckpoint(dir: string): Promise<LayersModel> {
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as {
    modelTopology: object;
    weightsManifest: { weights: tf.io.WeightsManifestEntry[] }[];
  };
  const bytes = readFileSync(join(dir, 'weights.bin'));
  const weightData = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const weightSpecs = json.weightsManifest.flatMap((group) => group.weights);
  return loadTransformer(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs, weightData }));
}

/** The committed checkpoint (written by `npm run train`); the `CHECKPOINT=<dir>` environment variable overrides it. */
export const REFERENCE_CHECKPOINT = process.env['CHECKPOINT'] ?? fileURLToPath(new URL('../fixtures/tslib-k4/', import.meta.url));

/** Loads {@link REFERENCE_CHECKPOINT}. */
export async function loadReferenceModel(): Promise<LayersModel> {
  return loadCheckpoint(REFERENCE_CHECKPOINT);
}

/** A loaded model's `MultiTokenHead`, found by class (whatever the layer names of its architecture). */
export function headOf(model: LayersModel): MultiTokenHead {
  const head = model.layers.find((layer): layer is MultiTokenHead => layer instanceof MultiTokenHead);
  if (head === undefined) throw new Error(`headOf: model ${model.name} has no MultiTokenHead layer.`);
  return head;
}

/** The parameter arithmetic (shared vs separate unembeddings) of a loaded model's head. */
export function headReport(model: LayersModel): ParameterReport {
  const head = headOf(model);
  const hiddenSize = (head.input as SymbolicTensor).shape.at(-1) as number; // [B, T, D]
  return parameterReport({ vocabSize: head.vocabSize, hiddenSize, numHeads: head.numHeads, offset0Kind: head.headKinds[0], headKind: head.headKinds.slice(1) });
}
