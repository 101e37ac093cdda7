/**
 * `createTransformer`: a decoder-only transformer with multi-token heads — GPT-style or
 * Llama-style by config — built as a tfjs-layers functional `LayersModel` (so `model.save` /
 * `tf.loadLayersModel` work):
 *
 *     token ids [B, T] → the trunk (embedding → blocks → final norm) → [B, T, D]
 *                      → MultiTokenHead (k offsets, one SharedUnembedding: tied to the trunk's
 *                        token embedding, or its own matrix) → [B, T, k, V]
 *
 * Reference: nanoGPT's `GPT`; llama2.c's `Transformer`; Gloeckle et al., "Better & Faster Large
 * Language Models via Multi-token Prediction" (2024) for the k-head trunk.
 */
import * as tf from '@tensorflow/tfjs-core';
import { input, model as functionalModel, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { fail } from '../internal/errors.js';
import { MAX_JSON_DEPTH } from '../internal/json.js';
import { registerOnce } from '../internal/registration.js';
import { deriveSeed } from '../internal/seed.js';
import { multiTokenHead, registerMtpLayers } from '../layers/index.js';
import { type ResolvedTransformerConfig, type TransformerConfig, resolveTransformerConfig } from './config.js';
import { type InitialValues, TransformerTrunk } from './trunk.js';
import { archOf, type ArchConfig } from './weights.js';

/** Names of the model's two layers (tests and scripts may look them up; the cached decoder finds them by class). @internal */
export const LAYER_NAMES = { trunk: 'transformer', head: 'mtp_head' } as const;

/**
 * Registers the layer classes a saved transformer needs (`TransformerTrunk` and the MTP layers)
 * for `tf.loadLayersModel`. Idempotent; `loadTransformer` calls it for you.
 */
export function registerModelLayers(): void {
  registerMtpLayers();
  registerOnce(TransformerTrunk);
}

/** The seed of a model's draft heads, derived from its config's `seed` (so heads and trunk never share random values). @internal */
export function headSeed(seed: number): number {
  return deriveSeed(seed, 0x4ead);
}

/** Builds the model of a resolved config; `initialValues` replaces the trunk's initializers. @internal */
export function buildTransformer(c: ResolvedTransformerConfig, initialValues?: InitialValues): LayersModel {
  registerModelLayers();
  const ids = input({ shape: [null], dtype: 'int32', name: 'token_ids' }); // [B, T]
  const trunk = new TransformerTrunk({ ...(archOf(c) as ArchConfig), name: LAYER_NAMES.trunk }, initialValues);
  const hidden = trunk.apply(ids) as SymbolicTensor; // [B, T, D]
  const head = multiTokenHead({
    numHeads: c.mtpHeads,
    vocabSize: c.vocabSize,
    headKind: c.headKind,
    ...(c.rank !== undefined ? { rank: c.rank } : {}),
    ...(c.headHiddenSize !== undefined ? { headHiddenSize: c.headHiddenSize } : {}),
    ...(c.tiedEmbeddings ? { tiedTo: trunk } : {}), // untied: the head's SharedUnembedding owns a [V, D] matrix
    ...(c.draftVocab !== null ? { draftVocab: c.draftVocab } : {}),
    seed: headSeed(c.seed),
    name: LAYER_NAMES.head,
  });
  const logits = head.apply(hidden) as SymbolicTensor; // [B, T, k, V]
  return functionalModel({ inputs: ids, outputs: logits, name: c.name });
}

/**
 * Builds the (untrained) transformer. Input: int32 token ids `[batch, seq]`, `seq ≤ maxLength`;
 * output: logits `[batch, seq, mtpHeads, vocabSize]`. Every field is checked before any weight
 * is created.
 *
 * @example
 * const gpt = createTransformer({ hiddenSize: 64, numLayers: 2 });
 * const llama = createTransformer({ norm: 'rmsNorm', positions: 'rotary', mlp: 'swiglu', numKeyValueHeads: 2, useBias: false });
 * const logits = gpt.predict(tf.tensor2d([[72, 105]], [1, 2], 'int32')); // [1, 2, 4, 256]
 */
export function createTransformer(config: TransformerConfig = {}): LayersModel {
  return buildTransformer(resolveTransformerConfig(config));
}

/**
 * Loads a saved transformer (`model.save` output: a URL, or any `tf.io.IOHandler` such as
 * `tf.io.fromMemory`) after registering every layer class it needs. Like `tf.loadLayersModel`
 * (weights load over zero-initialised variables, the initializers never run), except that the
 * weight specs are checked against the weight data before any tensor exists, and a load that
 * fails (a layer that does not fit the one before it, a missing, extra or misshapen weight)
 * frees every tensor it had made.
 *
 * @example
 * const model = await loadTransformer('https://example.com/tslib-k4/model.json');
 */
export async function loadTransformer(source: string | tf.io.IOHandler): Promise<LayersModel> {
  registerModelLayers();
  const artifacts = await loadHandler(source)();
  const { topology, weights } = checkArtifacts(artifacts);
  const model = buildFromTopology(topology, weights !== null);
  try {
    if (artifacts.trainingConfig != null) model.loadTrainingConfig(artifacts.trainingConfig as Parameters<LayersModel['loadTrainingConfig']>[0]);
    if (artifacts.userDefinedMetadata != null) model.setUserDefinedMetadata(artifacts.userDefinedMetadata);
    if (weights !== null) await loadWeightValues(model, weights.data, weights.specs);
  } catch (error) {
    model.dispose();
    throw error;
  }
  return model;
}

/** The `load` of `source`'s IO handler, found as `tf.loadLayersModel` finds it (a URL without a registered scheme is fetched over HTTP). */
function loadHandler(source: string | tf.io.IOHandler): () => Promise<tf.io.ModelArtifacts> {
  let handler: tf.io.IOHandler | undefined = typeof source === 'string' ? undefined : source;
  if (typeof source === 'string') {
    const handlers = tf.io.getLoadHandlers(source);
    if (handlers.length > 1) fail(Error, LOAD, 'source', `must match one IO handler (${handlers.length} do)`, source);
    handler = handlers[0] ?? tf.io.browserHTTPRequest(source);
  }
  const load = handler !== null && typeof handler === 'object' ? handler.load : undefined;
  if (typeof load !== 'function') fail(TypeError, LOAD, 'source', 'must be a URL string or a tf.io.IOHandler with a load method', source);
  return () => load.call(handler);
}

const LOAD = 'loadTransformer';

/** Bytes per stored element of each weight dtype, and of each quantized dtype. */
const STORED_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, complex64: 8, uint8: 1, uint16: 2, float16: 2 };

/**
 * The topology and, when the artifacts carry weights, their specs and data, checked: the topology
 * a JSON object, every spec named once with a shape of non-negative integers and a numeric dtype,
 * and the data exactly as long as the specs need. Nothing is allocated.
 */
function checkArtifacts(artifacts: tf.io.ModelArtifacts): { topology: Record<string, unknown>; weights: { specs: tf.io.WeightsManifestEntry[]; data: tf.io.WeightData } | null } {
  if (artifacts === null || typeof artifacts !== 'object') fail(TypeError, LOAD, 'source', 'must load model artifacts (an object)', artifacts);
  const raw = artifacts.modelTopology as Record<string, unknown> | undefined;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || ArrayBuffer.isView(raw) || raw instanceof ArrayBuffer) {
    fail(TypeError, LOAD, 'source modelTopology', 'must be a layers-model topology (a JSON object)', raw);
  }
  const topology = (raw['model_config'] ?? raw) as Record<string, unknown>;
  const { weightSpecs: specs, weightData: data } = artifacts;
  if (data == null) return { topology, weights: null };
  if (!Array.isArray(specs)) fail(TypeError, LOAD, 'source weightSpecs', 'must be an array of weight specs when the source has weight data', specs);
  const names = new Set<string>();
  let bytes = 0;
  specs.forEach((spec, i) => {
    const at = `source weightSpecs[${i}]`;
    if (spec === null || typeof spec !== 'object') fail(TypeError, LOAD, at, 'must be a weight spec { name, shape, dtype }', spec);
    if (typeof spec.name !== 'string' || names.has(spec.name)) fail(Error, LOAD, `${at}.name`, 'must be a string naming no other weight', spec.name);
    names.add(spec.name);
    if (!Array.isArray(spec.shape) || spec.shape.some((d) => !Number.isInteger(d) || d < 0)) fail(Error, LOAD, `${at}.shape`, 'must be an array of non-negative integers', spec.shape);
    const stored = spec.quantization?.dtype ?? spec.dtype;
    const size = STORED_BYTES[stored as string];
    if (size === undefined || spec.dtype === 'string') fail(Error, LOAD, `${at}.dtype`, 'must be float32, int32, bool or complex64 (quantized: uint8, uint16 or float16)', stored);
    bytes += size * spec.shape.reduce((a, b) => a * b, 1);
  });
  const given = Array.isArray(data) ? data.reduce((n, b) => n + b.byteLength, 0) : data.byteLength;
  if (given !== bytes) fail(Error, LOAD, 'source weightData', `must be ${bytes} bytes long, as its weightSpecs describe`, given);
  return { topology, weights: { specs, data } };
}

/**
 * The model of a saved topology, built as `tf.loadLayersModel` builds it (with zero-initialised
 * weights when values will be loaded), synchronously, so that the variables a failing build
 * already made are exactly those registered during this call, and are freed.
 */
function buildFromTopology(topology: Record<string, unknown>, weightsFollow: boolean): LayersModel {
  const config = pythonicToTs(topology) as { className?: unknown; config?: unknown };
  const entry = typeof config.className === 'string' ? tf.serialization.SerializationMap.getMap().classNameMap[config.className] : undefined;
  if (entry === undefined || config.config === null || typeof config.config !== 'object') {
    fail(TypeError, LOAD, 'source modelTopology', 'must be a registered layers-model class with a config (e.g. { class_name: "Model", config })', topology['class_name']);
  }
  const [cls, method] = entry;
  // tfjs-layers' Container.fromConfig(cls, config, customObjects, fastWeightInit); the registry's type lists the first two
  const fromConfig = method as unknown as (c: typeof cls, config: tf.serialization.ConfigDict, customObjects: tf.serialization.ConfigDict, fastWeightInit: boolean) => unknown;
  const before = new Set(Object.keys(tf.engine().registeredVariables));
  try {
    return fromConfig(cls, config.config as tf.serialization.ConfigDict, {}, weightsFollow) as unknown as LayersModel;
  } catch (error) {
    for (const [name, variable] of Object.entries(tf.engine().registeredVariables)) if (!before.has(name)) variable.dispose();
    throw error;
  }
}

/** Decodes `data` and writes it into `model`'s weights (and its optimizer's), freeing every decoded tensor whatever happens. */
async function loadWeightValues(model: LayersModel, data: tf.io.WeightData, specs: tf.io.WeightsManifestEntry[]): Promise<void> {
  const values = tf.io.decodeWeights(data, specs);
  try {
    const isOptimizer = (spec: tf.io.WeightsManifestEntry) => spec.group === 'optimizer';
    const modelWeights = Object.fromEntries(specs.filter((s) => !isOptimizer(s)).map((s) => [s.name, values[s.name]!]));
    try {
      model.loadWeights(modelWeights, true);
    } catch (error) {
      throw new Error(`${LOAD}: source weightSpecs must name exactly the model's weights with their shapes, but they do not (${(error as Error).message}).`);
    }
    const optimizerWeights = specs.filter(isOptimizer).map((s) => ({ name: s.name, tensor: values[s.name]! }));
    if (model.optimizer != null && optimizerWeights.length > 0) await model.optimizer.setWeights(optimizerWeights);
  } finally {
    tf.dispose(Object.values(values));
  }
}

/**
 * A saved (Keras-style, snake_case) topology in the camelCase form the layer classes read: keys
 * and string values converted, except `name` values and the layer names that head inbound-node
 * entries; a numpy scalar `{ type: 'ndarray', value }` becomes its value. The conversion
 * `tf.loadLayersModel` applies (tfjs-layers' `convertPythonicToTs`), nesting bounded.
 */
function pythonicToTs(value: unknown, key?: string, depth = 0): unknown {
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return value;
  if (typeof value === 'string') return toCamelCase(value);
  if (typeof value !== 'object') return value;
  if (depth >= MAX_JSON_DEPTH) throw new Error(`${LOAD}: source modelTopology must nest arrays and objects at most ${MAX_JSON_DEPTH} levels deep, but got deeper nesting.`);
  if (Array.isArray(value)) {
    const isNameList = key === 'inboundNodes' || key === 'outputLayers' || key === 'inputLayers';
    return value.map((item, i) => (isNameList && i === 0 && typeof item === 'string' ? item : pythonicToTs(item, key, depth + 1)));
  }
  const o = value as Record<string, unknown>;
  if (o['type'] === 'ndarray' && typeof o['value'] === 'number') return o['value'];
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) {
    if (k === 'name' && typeof v === 'string') out[k] = v;
    else {
      const camel = toCamelCase(k);
      out[camel] = pythonicToTs(v, camel, depth + 1);
    }
  }
  return out;
}

/** `snake_case` → `snakeCase` (tfjs-layers' `toCamelCase`). */
function toCamelCase(identifier: string): string {
  if (identifier.length <= 1 || !identifier.includes('_')) return identifier;
  return identifier.replace(/[_]+(\w|$)/g, (_, c: string) => c.toUpperCase());
}
