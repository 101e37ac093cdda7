/**
 * The models subpath under bad input and failure: nothing blocks, leaks or half-writes.
 * A tokenizer size that cannot fit its file fails before allocating; JSON nested absurdly deep
 * (safetensors header, config.json, draft-heads manifest) is refused naming the file and field;
 * a safetensors header naming a tensor twice is refused; a failed `attachDraftHeads` leaves the
 * head bit-identical; `keepRows` keeps only a root-to-node path; a failed `loadTransformer` frees
 * every tensor; U+FEFF round-trips; messages name the argument at fault; loaders record the
 * model's stop tokens and `CachedTransformer` carries them.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MultiTokenHead } from '../../src/layers/index.js';
import { attachDraftHeads, CachedTransformer, createTransformer, exportDraftHeads, loadHfLlama, loadLlama2c, loadTransformer, Llama2cTokenizer } from '../../src/models/index.js';
import { baseFingerprint, readDraftHeads } from '../../src/models/draft_heads.js';
import { decodeBytes, encodeBytes } from '../../src/models/tokenizer.js';
import { type HfSingleFiles } from '../../src/models/hf_llama.js';
import { parseLlama2c } from '../../src/models/llama2c.js';
import { readSafetensors } from '../../src/models/safetensors.js';
import { useCpu } from '../helpers/backend.js';
import { readManifest } from '../helpers/heads_file.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';
import { tinyTransformer } from '../helpers/models.js';
import { readStories, storiesAvailable, toHfLayout, writeSafetensors } from '../helpers/stories.js';

beforeAll(useCpu);

const available = storiesAvailable('tests/models/reliability');
const DEEP = 200_000;
/** `[[[…[0]…]]]` nested `depth` arrays deep. */
const deepArray = (depth: number) => `${'['.repeat(depth)}0${']'.repeat(depth)}`;
/** A safetensors file whose header is the given JSON text (data: `dataBytes` zero bytes). */
function safetensorsWithHeader(header: string, dataBytes = 4): Uint8Array {
  const json = new TextEncoder().encode(header);
  const bytes = new Uint8Array(8 + json.length + dataBytes);
  new DataView(bytes.buffer).setUint32(0, json.length, true);
  bytes.set(json, 8);
  return bytes;
}

/** A draft-heads file with the given manifest JSON text and no weights. */
function headsWithManifest(manifest: string): Uint8Array {
  const json = new TextEncoder().encode(manifest);
  const pad = (4 - (json.length % 4)) % 4;
  const bytes = new Uint8Array(12 + json.length + pad);
  bytes.set(new TextEncoder().encode('MTPHEADS'));
  new DataView(bytes.buffer).setUint32(8, json.length, true);
  bytes.set(json, 12);
  return bytes;
}

describe('Llama2cTokenizer.fromBytes bounds vocabSize before allocating', () => {
  it.skipIf(!available)('a vocabSize above SIZE_LIMITS or beyond what the file can hold fails fast, naming the function, the argument and the value', () => {
    const file = readStories('tokenizer');
    for (const [vocabSize, message] of [
      [2 ** 31 - 1, 'Llama2cTokenizer.fromBytes: bytes: vocabSize must be at most SIZE_LIMITS.vocabSize = 1048576, but got 2147483647.'],
      [1_000_000, 'Llama2cTokenizer.fromBytes: bytes: file is truncated: vocabSize 1000000 tokens need at least 8000004 bytes (a score and a length each), but the file has 6227 bytes.'],
    ] as const) {
      const start = performance.now();
      expect(() => Llama2cTokenizer.fromBytes(file, vocabSize)).toThrow(message);
      expect(performance.now() - start).toBeLessThan(50);
    }
  });
});

describe('JSON nested absurdly deep is refused, naming the file and the field', () => {
  it('a safetensors header: tensor shape', () => {
    const header = `{"model.embed_tokens.weight":{"dtype":"F32","shape":${deepArray(DEEP)},"data_offsets":[0,4]}}`;
    expect(() => readSafetensors(safetensorsWithHeader(header), 'loadHfLlama: files.safetensors')).toThrow(
      'loadHfLlama: files.safetensors: header["model.embed_tokens.weight"].shape[0][0][0][0][0][0]… must nest arrays and objects at most 64 levels deep, but got deeper nesting.',
    );
    // 5,000 levels, and nesting just past the limit: the same refusal; at the limit it parses (and fails on the shape)
    expect(() => readSafetensors(safetensorsWithHeader(header.replace(deepArray(DEEP), deepArray(5000))))).toThrow('readSafetensors: bytes: header["model.embed_tokens.weight"].shape');
    expect(() => readSafetensors(safetensorsWithHeader(`{"w":{"shape":${deepArray(63)}}}`))).toThrow('readSafetensors: bytes: header.w.shape[0][0][0][0][0][0]… must nest arrays and objects at most 64 levels deep');
    expect(() => readSafetensors(safetensorsWithHeader(`{"w":{"dtype":"F32","shape":${deepArray(62)},"data_offsets":[0,4]}}`))).toThrow(
      'readSafetensors: bytes: tensor "w" shape must be an array of non-negative integers, but got [[[[an array of length 1]]]].',
    );
  });

  it.skipIf(!available)('config.json: head_dim (as text, and as an object built in code)', async () => {
    const { config } = toHfLayout(parseLlama2c(readStories('checkpoint')), 'F32');
    const text = JSON.stringify({ ...config, head_dim: 0 }).replace('"head_dim":0', `"head_dim":${deepArray(DEEP)}`);
    const safetensors = new Uint8Array(8);
    await expectThrowNoLeak(
      () => loadHfLlama({ config: text, safetensors }),
      'loadHfLlama: files.config: head_dim[0][0][0][0][0][0][0]… must nest arrays and objects at most 64 levels deep, but got deeper nesting.',
    );
    let deep: unknown = 0;
    for (let i = 0; i < DEEP; i++) deep = [deep];
    await expectThrowNoLeak(
      () => loadHfLlama({ config: { ...config, head_dim: deep }, safetensors }),
      'loadHfLlama: files.config: head_dim must be a positive integer at most 65536, but got [[[[an array of length 1]]]].',
    );
  });

  it('a draft-heads manifest: weights[0].shape (readDraftHeads, attachDraftHeads and loadLlama2c)', async () => {
    const model = tinyTransformer({ mtpHeads: 2, headKind: 'linear' });
    const { manifest } = readManifest(await exportDraftHeads(model));
    const weights = manifest['weights'] as Array<{ name: string; shape: unknown }>;
    const text = JSON.stringify({ ...manifest, weights: [{ ...weights[0], shape: 'DEEP' }, ...weights.slice(1)] }).replace('"DEEP"', deepArray(DEEP));
    const file = headsWithManifest(text); // every other field valid
    const field = 'manifest.weights[0].shape[0][0][0][0][0]… must nest arrays and objects at most 64 levels deep, but got deeper nesting.';
    expect(() => readDraftHeads(file)).toThrow(`readDraftHeads: bytes: ${field}`);
    await expectThrowNoLeak(() => attachDraftHeads(model, file), `attachDraftHeads: heads: ${field}`);
    model.dispose();
    await expectThrowNoLeak(() => loadLlama2c(new Uint8Array(28), { draftHeads: file }), `loadLlama2c: options.draftHeads: ${field}`);
  });
});

describe('a safetensors header that names a tensor twice', () => {
  it('is refused, naming the file and the tensor', () => {
    const entry = '{"dtype":"F32","shape":[1],"data_offsets":[0,4]}';
    const bytes = safetensorsWithHeader(`{"__metadata__":{"format":"pt"},"model.norm.weight":${entry},"lm_head.weight":${entry.replace('[0,4]', '[4,8]')},"model.norm.weight":${entry}}`, 8);
    expect(() => readSafetensors(bytes, 'loadHfLlama: files.safetensors')).toThrow('loadHfLlama: files.safetensors: header must name each key once, but got "model.norm.weight" twice.');
    // the same tensor written with an escape is the same name
    const escaped = safetensorsWithHeader(`{"w":${entry},"\\u0077":${entry}}`);
    expect(() => readSafetensors(escaped)).toThrow('readSafetensors: bytes: header must name each key once, but got "w" twice.');
    // a key inside an entry repeated
    expect(() => readSafetensors(safetensorsWithHeader(`{"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`))).toThrow('readSafetensors: bytes: header.w must name each key once, but got "dtype" twice.');
    // equal names in different objects are fine
    expect(readSafetensors(safetensorsWithHeader(`{"a":${entry},"b":${entry.replace('[0,4]', '[4,8]')}}`, 8)).tensors.size).toBe(2);
  });
});

describe('attachDraftHeads validates everything, then writes all or nothing', () => {
  const config = { mtpHeads: 3, headKind: 'linear' } as const;
  let trained: LayersModel;
  let heads: Uint8Array;
  const headOf = (m: LayersModel) => m.getLayer('mtp_head') as unknown as MultiTokenHead;
  /** The bits of every draft weight (offsets 1…k−1). */
  const draftBits = (m: LayersModel) => headOf(m).offsetHeads.slice(1).flatMap((h) => h.weights.map((w) => Array.from(new Uint32Array((w.read().dataSync() as Float32Array).slice().buffer))));

  beforeAll(async () => {
    trained = tinyTransformer(config);
    headOf(trained).setDraftVocab([0, 3, 5, 7, 30]);
    heads = await exportDraftHeads(trained);
  });
  afterAll(() => trained.dispose());

  /** A model of the same base (the same fingerprint) whose draft weights differ from `trained`'s. */
  function sameBase(): LayersModel {
    const model = tinyTransformer(config);
    for (const h of headOf(model).offsetHeads.slice(1)) for (const w of h.weights) {
      const value = tf.fill(w.shape as number[], 0.25);
      w.write(value);
      value.dispose();
    }
    return model;
  }

  it('a parsed DraftHeads whose last weight holds a NaN: refused, the draft weights and the draft vocabulary untouched', async () => {
    const model = sameBase();
    const before = draftBits(model);
    const parsed = readDraftHeads(heads);
    const names = [...parsed.values.keys()];
    const last = names[names.length - 1]!;
    const bad = Float32Array.from(parsed.values.get(last)!);
    bad[bad.length - 1] = NaN;
    await expectThrowNoLeak(() => attachDraftHeads(model, { manifest: parsed.manifest, values: new Map(parsed.values).set(last, bad) }), `attachDraftHeads: heads weight ${last}[${bad.length - 1}] must be a finite float32, but got NaN.`);
    await expectThrowNoLeak(() => attachDraftHeads(model, { manifest: parsed.manifest, values: new Map(parsed.values).set(last, new Float32Array(3)) }), `attachDraftHeads: heads weight ${last} must be a Float32Array of 16 values, but got a Float32Array of length 3.`);
    await expectThrowNoLeak(() => attachDraftHeads(model, { manifest: { ...parsed.manifest, numHeads: 1000 }, values: parsed.values }), 'attachDraftHeads: heads: manifest.numHeads must be an integer in [2, 64], but got 1000.');
    expect(draftBits(model)).toEqual(before);
    expect(headOf(model).draftVocab).toBeNull();
    await expectNoLeak(() => attachDraftHeads(model, parsed).then(() => undefined));
    expect(draftBits(model)).toEqual(draftBits(trained));
    expect(headOf(model).draftVocab).toEqual([0, 3, 5, 7, 30]);
    model.dispose();
  });

  it('a write that fails midway restores the weights already written and the draft vocabulary', async () => {
    const model = sameBase();
    const before = draftBits(model);
    const lastHead = headOf(model).offsetHeads[2]!;
    const last = lastHead.weights[lastHead.weights.length - 1]!;
    const write = last.write.bind(last);
    last.write = () => {
      throw new Error('write failed');
    };
    try {
      await expectThrowNoLeak(() => attachDraftHeads(model, heads), 'write failed');
    } finally {
      last.write = write;
    }
    expect(draftBits(model)).toEqual(before);
    expect(headOf(model).draftVocab).toBeNull();
    model.dispose();
  });
});

describe('CachedTransformer.keepRows keeps one root-to-node path', () => {
  let layers: LayersModel;
  let model: CachedTransformer;
  beforeAll(() => {
    layers = tinyTransformer();
    model = new CachedTransformer(layers);
  });
  afterAll(() => {
    model.dispose();
    layers.dispose();
  });

  it('after forwardTree: siblings, a row off the path and a non-root start are refused; a path is kept', async () => {
    tf.dispose(model.forward([1, 2, 3]));
    // 0 and 1 are siblings under the prefix; 2 → child of 0; 3 → child of 1
    const tree = () => tf.dispose(model.forwardTree([4, 5, 6, 7], [-1, -1, 0, 1]));
    tree();
    await expectThrowNoLeak(() => model.keepRows([0, 1]), 'CachedTransformer.keepRows: rows[1] must be a child of rows[0] = 0 (the kept rows are one root-to-node path), but got 1, whose parent is -1.');
    await expectThrowNoLeak(() => model.keepRows([0, 3]), 'CachedTransformer.keepRows: rows[1] must be a child of rows[0] = 0 (the kept rows are one root-to-node path), but got 3, whose parent is 1.');
    await expectThrowNoLeak(() => model.keepRows([2]), "CachedTransformer.keepRows: rows[0] must be a root of the last forward's tree (parent -1: it hangs under the cached prefix), but got 2, whose parent is 0.");
    expect(model.length).toBe(3 + 4);
    model.keepRows([1, 3]);
    expect(model.length).toBe(3 + 2);
  });

  it('after a plain forward (a chain): only a prefix 0…r−1', async () => {
    model.truncate(3);
    tf.dispose(model.forward([4, 5, 6]));
    await expectThrowNoLeak(() => model.keepRows([0, 2]), 'CachedTransformer.keepRows: rows[1] must be a child of rows[0] = 0 (the kept rows are one root-to-node path), but got 2, whose parent is 1.');
    await expectThrowNoLeak(() => model.keepRows([1]), "CachedTransformer.keepRows: rows[0] must be a root of the last forward's tree (parent -1: it hangs under the cached prefix), but got 1, whose parent is 0.");
    model.keepRows([0, 1]);
    expect(model.length).toBe(5);
    tf.dispose(model.forward([7]));
    model.keepRows([]);
    expect(model.length).toBe(5);
  });
});

describe('loadTransformer frees every tensor of a failed load', () => {
  let saved: tf.io.ModelArtifacts;
  beforeAll(async () => {
    const model = tinyTransformer();
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        saved = artifacts;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    model.dispose();
  });

  const variables = () => Object.keys(tf.engine().registeredVariables).length;
  async function expectCleanFailure(artifacts: tf.io.ModelArtifacts, message: string): Promise<void> {
    const before = variables();
    await expectThrowNoLeak(() => loadTransformer(tf.io.fromMemory(artifacts)), message);
    expect(variables()).toBe(before);
  }

  it('a head that does not fit the trunk', async () => {
    const topology = JSON.parse(JSON.stringify(saved.modelTopology)) as { config: { layers: Array<{ class_name: string; config: Record<string, unknown> }> } };
    const head = topology.config.layers.find((l) => l.class_name === 'MultiTokenHead')!;
    head.config['vocab_size'] = 33;
    await expectCleanFailure({ ...saved, modelTopology: topology }, "SharedUnembedding: vocabSize must equal the tied layer 'transformer' inputDim, but got vocabSize 33 and inputDim 32.");
  });

  it('a bad weights manifest: misshapen spec, unknown dtype, a name given twice', async () => {
    const specs = saved.weightSpecs!;
    await expectCleanFailure({ ...saved, weightSpecs: specs.map((s, i) => (i === 2 ? { ...s, shape: [-1] } : s)) }, 'loadTransformer: source weightSpecs[2].shape must be an array of non-negative integers, but got [-1].');
    await expectCleanFailure({ ...saved, weightSpecs: specs.map((s, i) => (i === 2 ? { ...s, dtype: 'string' as const } : s)) }, 'loadTransformer: source weightSpecs[2].dtype must be float32, int32, bool or complex64 (quantized: uint8, uint16 or float16), but got "string".');
    await expectCleanFailure({ ...saved, weightSpecs: specs.map((s, i) => (i === 2 ? { ...s, name: specs[0]!.name } : s)) }, `loadTransformer: source weightSpecs[2].name must be a string naming no other weight, but got "${specs[0]!.name}".`);
    const matrix = specs.findIndex((s) => s.shape.length === 2 && s.shape[0] !== s.shape[1]);
    const transposed = specs.map((s, i) => (i === matrix ? { ...s, shape: [...s.shape].reverse() } : s));
    await expectCleanFailure({ ...saved, weightSpecs: transposed }, `loadTransformer: source weightSpecs must name exactly the model's weights with their shapes, but they do not (Shape mismatch: [${specs[matrix]!.shape.join(',')}] vs. [${transposed[matrix]!.shape.join(',')}]).`);
  });

  it('a missing weight, an extra weight, short data', async () => {
    const specs = saved.weightSpecs!;
    const data = saved.weightData as ArrayBuffer;
    const lastBytes = 4 * specs[specs.length - 1]!.shape.reduce((a, b) => a * b, 1);
    await expectCleanFailure({ ...saved, weightSpecs: specs.slice(0, -1), weightData: data.slice(0, data.byteLength - lastBytes) }, `loadTransformer: source weightSpecs must name exactly the model's weights with their shapes, but they do not (1 of ${specs.length} weights are not set: ${specs[specs.length - 1]!.name}).`);
    const extra = new Uint8Array(data.byteLength + 8);
    extra.set(new Uint8Array(data));
    await expectCleanFailure({ ...saved, weightSpecs: [...specs, { name: 'extra', shape: [2], dtype: 'float32' }], weightData: extra.buffer }, 'loadTransformer: source weightSpecs must name exactly the model\'s weights with their shapes, but they do not (Provided weight data has no target variable: extra).');
    await expectCleanFailure({ ...saved, weightData: data.slice(0, 100) }, `loadTransformer: source weightData must be ${data.byteLength} bytes long, as its weightSpecs describe, but got 100.`);
  });

  it('a topology nested absurdly deep, or of no registered class', async () => {
    let deep: unknown = 0;
    for (let i = 0; i < DEEP; i++) deep = [deep];
    await expectCleanFailure({ ...saved, modelTopology: { class_name: 'Model', config: { layers: deep } } }, 'loadTransformer: source modelTopology must nest arrays and objects at most 64 levels deep, but got deeper nesting.');
    await expectCleanFailure({ ...saved, modelTopology: { class_name: 'Nope', config: {} } }, 'loadTransformer: source modelTopology must be a registered layers-model class with a config (e.g. { class_name: "Model", config }), but got "Nope".');
  });

  it('a compiled model saved with its optimizer loads its training config and optimizer weights, as tf.loadLayersModel does', async () => {
    const model = createTransformer({ vocabSize: 8, hiddenSize: 8, numAttentionHeads: 2, numLayers: 1, maxLength: 8, mtpHeads: 2 });
    model.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
    const [x, y] = [tf.tensor2d([[1, 2, 3]], [1, 3], 'int32'), tf.zeros([1, 3, 2, 8])];
    await model.fit(x, y, { epochs: 1, verbose: 0 });
    let withOptimizer: tf.io.ModelArtifacts | undefined;
    await model.save(
      tf.io.withSaveHandler(async (artifacts) => {
        withOptimizer = artifacts;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
      { includeOptimizer: true },
    );
    const want = await model.optimizer.getWeights();
    const loaded = await loadTransformer(tf.io.fromMemory(withOptimizer!));
    const got = await loaded.optimizer.getWeights();
    expect(got.map((w) => w.name)).toEqual(want.map((w) => w.name));
    got.forEach((w, i) => expect(Array.from(w.tensor.dataSync())).toEqual(Array.from(want[i]!.tensor.dataSync())));
    tf.dispose([x, y]);
    loaded.dispose();
    model.dispose();
  });

  it('a good load still loads, with the saved weights', async () => {
    const same = await expectNoLeak(async () => {
      const loaded = await loadTransformer(tf.io.fromMemory(saved));
      const want = tf.io.decodeWeights(saved.weightData!, saved.weightSpecs!);
      const equal = loaded.weights.every((w) => w.read().dataSync().every((x, i) => x === want[w.originalName]!.dataSync()[i]));
      tf.dispose(Object.values(want));
      loaded.dispose();
      return equal;
    });
    expect(same).toBe(true);
  });
});

describe('a leading U+FEFF survives decoding', () => {
  it('the byte tokenizer round-trips every string', () => {
    expect(decodeBytes(encodeBytes('\ufeffhi'))).toBe('\ufeffhi');
    expect(decodeBytes(encodeBytes('\ufeff\ufeff'))).toBe('\ufeff\ufeff');
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.boolean(), (s, bom) => {
        const text = bom ? `\ufeff${s}` : s;
        expect(decodeBytes(encodeBytes(text))).toBe(text);
      }),
      { numRuns: 300, seed: 3 },
    );
  });

  it.skipIf(!available)('Llama2cTokenizer round-trips every string, one starting with U+FEFF included', () => {
    const tok = Llama2cTokenizer.fromBytes(readStories('tokenizer'), 512);
    expect(tok.decode(tok.encode('\ufeffhi'))).toBe('\ufeffhi');
    expect(tok.decode(tok.encode('\ufeffhi', { bos: false }))).toBe(' \ufeffhi');
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.boolean(), (s, bom) => {
        const text = bom ? `\ufeff${s}` : s;
        expect(tok.decode(tok.encode(text))).toBe(text);
      }),
      { numRuns: 300, seed: 4 },
    );
  });
});

describe.skipIf(!available)('messages name the argument at fault', () => {
  let checkpoint: Uint8Array;
  beforeAll(() => {
    checkpoint = readStories('checkpoint');
  });

  it("loadLlama2c: a bad options.headKind is the option's fault, not the checkpoint's", async () => {
    await expectThrowNoLeak(
      () => loadLlama2c(checkpoint, { headKind: 'huge' as never }),
      'loadLlama2c: options.headKind must be one of "identity", "linear", "residual", "lowRank", "mlp", "sequential", but got "huge".',
    );
  });

  it('a heads file cut right after its magic is truncated, not a wrong magic', async () => {
    const cut = new TextEncoder().encode('MTPHEADS');
    expect(() => readDraftHeads(cut)).toThrow('readDraftHeads: bytes: file is truncated: it must hold the 12-byte header (the magic "MTPHEADS" and the uint32 manifest length), but has 8 bytes.');
    await expectThrowNoLeak(() => loadLlama2c(checkpoint, { draftHeads: Uint8Array.of(...cut, 1, 0) }), 'loadLlama2c: options.draftHeads: file is truncated: it must hold the 12-byte header (the magic "MTPHEADS" and the uint32 manifest length), but has 10 bytes.');
    expect(() => readDraftHeads(new TextEncoder().encode('MTPHEAD'))).toThrow('readDraftHeads: bytes: file is truncated: it must hold the 12-byte header');
    expect(() => readDraftHeads(new TextEncoder().encode('MTPHEADX1234'))).toThrow('readDraftHeads: bytes: file must start with the magic "MTPHEADS", but got "MTPHEADX".');
  });

  it("loadLlama2c: heads of another base model are options.draftHeads' fault", async () => {
    const options = { mtpHeads: 3, headKind: 'linear' } as const;
    const { model } = await loadLlama2c(checkpoint, options);
    const heads = await exportDraftHeads(model);
    model.dispose();
    const changed = checkpoint.slice();
    new DataView(changed.buffer).setFloat32(28 + 4 * 100, 0.5, true); // one weight of token_embedding
    const { model: other } = await loadLlama2c(changed, options);
    const fingerprint = await baseFingerprint(other);
    other.dispose();
    await expectThrowNoLeak(
      () => loadLlama2c(changed, { draftHeads: heads }),
      `loadLlama2c: options.draftHeads were trained on another base model: base.fingerprint must be this model's ${fingerprint}, but got ${readDraftHeads(heads).manifest.base.fingerprint}.`,
    );
  });
});

describe('stop tokens: the loaders record them, CachedTransformer carries them', () => {
  it.skipIf(!available)('loadLlama2c: BOS and EOS (1, 2), as run.c stops at BOS', async () => {
    const { model, stopTokens } = await loadLlama2c(readStories('checkpoint'));
    expect(stopTokens).toEqual([1, 2]);
    const cached = new CachedTransformer(model);
    expect(cached.stopTokens).toEqual([1, 2]);
    expect(new CachedTransformer(model, { stopTokens: [] }).stopTokens).toEqual([]);
    cached.dispose();
    model.dispose();
  });

  it.skipIf(!available)("loadHfLlama: eos_token_id of config.json (a number or a list), generation_config.json's when given", async () => {
    const layout = toHfLayout(parseLlama2c(readStories('checkpoint')), 'F32');
    const safetensors = writeSafetensors(layout.tensors);
    const load = async (files: Partial<HfSingleFiles>, eos?: unknown) => {
      const { model, stopTokens } = await loadHfLlama({ config: { ...layout.config, ...(eos !== undefined ? { eos_token_id: eos } : {}) }, safetensors, ...files });
      const carried = new CachedTransformer(model).stopTokens;
      model.dispose();
      return { stopTokens, carried };
    };
    expect(await load({}, 2)).toEqual({ stopTokens: [2], carried: [2] });
    expect(await load({}, [2, 5])).toEqual({ stopTokens: [2, 5], carried: [2, 5] });
    expect(await load({})).toEqual({ stopTokens: [], carried: [] });
    expect(await load({ generationConfig: '{"eos_token_id": [7, 2]}' }, 2)).toEqual({ stopTokens: [7, 2], carried: [7, 2] });
    expect(await load({ generationConfig: new TextEncoder().encode('{"max_length": 20}') }, 2)).toEqual({ stopTokens: [2], carried: [2] });
    await expectThrowNoLeak(() => load({}, 512), 'loadHfLlama: files.config: eos_token_id must be an integer in [0, 511], but got 512.');
    await expectThrowNoLeak(() => load({ generationConfig: { eos_token_id: [2, -1] } }, 2), 'loadHfLlama: files.generationConfig: eos_token_id[1] must be an integer in [0, 511], but got -1.');
  });

  it('a model no loader saw has none; options.stopTokens sets them, checked', () => {
    const model = createTransformer({ vocabSize: 16, hiddenSize: 8, numAttentionHeads: 2, numLayers: 1, maxLength: 8, mtpHeads: 2 });
    expect(new CachedTransformer(model).stopTokens).toBeUndefined();
    expect(new CachedTransformer(model, { stopTokens: [3, 4] }).stopTokens).toEqual([3, 4]);
    expect(() => new CachedTransformer(model, { stopTokens: [16] })).toThrow('CachedTransformer: options.stopTokens[0] must be an integer in [0, 15], but got 16.');
    expect(() => new CachedTransformer(model, { stopTokens: 3 as never })).toThrow('CachedTransformer: options.stopTokens must be an array of token ids, but got 3.');
    model.dispose();
  });
});
