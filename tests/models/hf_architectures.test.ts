/**
 * `loadHfLlama` across the Llama family as Hugging Face configures it. Checkpoints shaped like
 * SmolLM2 (llama, GQA, tied), Qwen2 (q/k/v biases), Llama 3.1 (attention and MLP biases,
 * head_dim ≠ hidden/heads, llama3 RoPE scaling, untied) and Mistral (linear RoPE scaling) are
 * written by the test with random weights, in Hugging Face's names and `[out, in]` layout,
 * unsharded and sharded, F32, F16 and BF16: each loads and gives exactly the logits of the same
 * (rounded) weights through `transformerFromWeights`, and those match a float64 forward pass whose
 * RoPE frequencies the test computes itself. Stop tokens come from config.json or
 * generation_config.json; a folder URL is read with a progress report per shard; a model larger
 * than wasm's memory is refused before anything is read; bad files fail before any tensor exists,
 * naming the file and the field.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode } from '../../src/index.js';
import { CachedTransformer, loadHfLlama, type TransformerConfig } from '../../src/models/index.js';
import { parseHfLlama, type HfLoadProgress } from '../../src/models/hf_llama.js';
import { transformerFromWeights, type CheckpointWeights } from '../../src/models/from_weights.js';
import { inverseFrequencies } from '../../src/models/positions.js';
import { useCpu } from '../helpers/backend.js';
import { offset0Logits } from '../helpers/models.js';
import { expectNoLeak, expectThrowNoLeak, peakBytesDuringAsync } from '../helpers/leak.js';
import { referenceLogits, type ReferenceConfig } from '../helpers/llama_reference.js';
import { LLAMA_FAMILY, randomWeights, toHfTensors } from '../helpers/hf_models.js';
import { bfloat16ToFloat, floatToBfloat16, floatToHalf, halfToFloat, writeSafetensors, writeShards, type TensorToWrite } from '../helpers/stories.js';

beforeAll(useCpu);

type Dtype = TensorToWrite['dtype'];

/** One family member: its config.json and what it must mean as a `TransformerConfig` (stated here, not derived). */
interface Shape {
  title: string;
  hf: Record<string, unknown>;
  config: TransformerConfig;
  eos: number[];
}

const LLAMA3_SCALING = { factor: 8, lowFreqFactor: 1, highFreqFactor: 8, originalMaxLength: 64 }; // wavelengths 6.3 (kept), 29 (blended), 135+ (divided)

const SHAPES: Shape[] = [
  {
    title: 'SmolLM2-shaped (llama: 3 query heads on 1 key/value head, tied, rope_theta 1e5)',
    hf: {
      architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu', hidden_size: 48, intermediate_size: 64, num_hidden_layers: 2,
      num_attention_heads: 3, num_key_value_heads: 1, head_dim: 16, vocab_size: 96, max_position_embeddings: 8192, rms_norm_eps: 1e-5,
      rope_theta: 100000, rope_scaling: null, tie_word_embeddings: true, attention_bias: false, mlp_bias: false, pretraining_tp: 1,
      bos_token_id: 0, eos_token_id: 0, torch_dtype: 'bfloat16', initializer_range: 0.041666666666666664, use_cache: true,
    },
    config: { vocabSize: 96, maxLength: 8192, hiddenSize: 48, numLayers: 2, numAttentionHeads: 3, numKeyValueHeads: 1, headDim: 16, intermediateSize: 64, normEpsilon: 1e-5, ropeTheta: 100000, attentionBias: 'none', mlpBias: false, tiedEmbeddings: true },
    eos: [0],
  },
  {
    title: 'Qwen2-shaped (q/k/v biases, GQA, tied, rope_theta 1e6, an unused sliding_window)',
    hf: {
      architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_act: 'silu', hidden_size: 32, intermediate_size: 80, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 112, max_position_embeddings: 32768, max_window_layers: 21, sliding_window: 32768,
      use_sliding_window: false, rope_theta: 1000000, rms_norm_eps: 1e-6, tie_word_embeddings: true, bos_token_id: 100, eos_token_id: 101,
      attention_dropout: 0, rope_scaling: null, torch_dtype: 'bfloat16', use_cache: true,
    },
    config: { vocabSize: 112, maxLength: 32768, hiddenSize: 32, numLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 8, intermediateSize: 80, normEpsilon: 1e-6, ropeTheta: 1e6, attentionBias: 'qkv', mlpBias: false, tiedEmbeddings: true },
    eos: [101],
  },
  {
    title: 'Llama-3.1-shaped (attention and MLP biases, head_dim 12 ≠ 32/4, llama3 rope_scaling, untied, two eos ids)',
    hf: {
      model_type: 'llama', hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 12,
      vocab_size: 80, max_position_embeddings: 512, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false, attention_bias: true, mlp_bias: true,
      rope_scaling: { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 8.0, original_max_position_embeddings: 64 },
      eos_token_id: [78, 79],
    },
    config: {
      vocabSize: 80, maxLength: 512, hiddenSize: 32, numLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 12, intermediateSize: 48, normEpsilon: 1e-5, ropeTheta: 10000,
      ropeScaling: { type: 'llama3', ...LLAMA3_SCALING }, attentionBias: 'qkvo', mlpBias: true, tiedEmbeddings: false,
    },
    eos: [78, 79],
  },
  {
    title: 'Mistral-shaped (no sliding window, linear rope_scaling in the older "type" spelling, untied, no eos)',
    hf: {
      architectures: ['MistralForCausalLM'], model_type: 'mistral', hidden_size: 32, intermediate_size: 56, num_hidden_layers: 2, num_attention_heads: 4,
      num_key_value_heads: 1, vocab_size: 64, max_position_embeddings: 1024, rope_theta: 10000, sliding_window: null, tie_word_embeddings: false,
      rope_scaling: { type: 'linear', factor: 4 },
    },
    config: { vocabSize: 64, maxLength: 1024, hiddenSize: 32, numLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 1, headDim: 8, intermediateSize: 56, normEpsilon: 1e-6, ropeTheta: 10000, ropeScaling: { type: 'linear', factor: 4 }, attentionBias: 'none', mlpBias: false, tiedEmbeddings: false },
    eos: [],
  },
];

/** The weights the file holds after rounding to `dtype` (what a correct loader must give back exactly). */
function rounded(weights: CheckpointWeights, dtype: Dtype): CheckpointWeights {
  const round = dtype === 'F32' ? (v: number) => v : dtype === 'F16' ? (v: number) => halfToFloat(floatToHalf(v)) : (v: number) => bfloat16ToFloat(floatToBfloat16(v));
  return new Map([...weights].map(([name, t]) => [name, { shape: t.shape, data: t.data.map(round) }]));
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
const tokensFor = (V: number, n = 72) => Array.from({ length: n }, (_, i) => (i * 37 + 11) % V);

/**
 * transformers' inverse frequencies, transcribed in float64 from `modeling_rope_utils.py`:
 * default θ^(−2i/d); linear divides by factor; llama3 keeps wavelengths below
 * original/high_freq_factor, divides those above original/low_freq_factor, and blends between
 * with smooth = (original/wavelength − low)/(high − low).
 */
function referenceInvFreq(headDim: number, theta: number, scaling: TransformerConfig['ropeScaling']): number[] {
  const base = Array.from({ length: headDim / 2 }, (_, i) => 1 / theta ** ((2 * i) / headDim));
  if (!scaling) return base;
  if (scaling.type === 'linear') return base.map((f) => f / scaling.factor);
  const { factor, lowFreqFactor, highFreqFactor, originalMaxLength } = scaling;
  return base.map((f) => {
    const wavelength = (2 * Math.PI) / f;
    if (wavelength < originalMaxLength / highFreqFactor) return f;
    if (wavelength > originalMaxLength / lowFreqFactor) return f / factor;
    const smooth = (originalMaxLength / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

describe('RoPE scaling', () => {
  it.each([
    ['linear', { type: 'linear', factor: 4 }, 16, 10000],
    ['llama3, all three bands', { type: 'llama3', ...LLAMA3_SCALING }, 12, 10000],
    ['llama3 as Llama 3.1 8B configures it', { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxLength: 8192 }, 128, 500000],
  ] as const)('%s: the inverse frequencies of transformers (float32: within 1e-6 relative of float64, the exponent 2i/d rounded as torch rounds it)', (_, scaling, headDim, theta) => {
    const got = inverseFrequencies(headDim, theta, scaling);
    const want = referenceInvFreq(headDim, theta, scaling);
    const unscaled = referenceInvFreq(headDim, theta, null);
    got.forEach((f, i) => expect(Math.abs(f - want[i]!) / want[i]!).toBeLessThan(1e-6));
    const kept = want.filter((f, i) => f === unscaled[i]).length;
    const divided = want.filter((f, i) => Math.abs(f * scaling.factor - unscaled[i]!) < 1e-12 * unscaled[i]!).length;
    if (scaling.type === 'llama3') expect([kept, divided, want.length - kept - divided].every((n) => n > 0)).toBe(true); // every band is exercised
  });
});

describe.each(SHAPES)('$title', (shape) => {
  const config: TransformerConfig = { ...LLAMA_FAMILY, ...shape.config };
  const weights = randomWeights(config, shape.config.vocabSize!);
  const tokens = tokensFor(shape.config.vocabSize!);
  const V = shape.config.vocabSize!;

  it('config.json means the stated TransformerConfig', () => {
    const parsed = parseHfLlama(shape.hf, writeSafetensors(toHfTensors(weights, 'F32')));
    expect(parsed.config).toEqual(expect.objectContaining(config));
    expect(parsed.modelType).toBe(shape.hf.model_type);
    expect(parsed.stopTokens).toEqual(shape.eos);
    expect([...parsed.weights.keys()].sort()).toEqual([...weights.keys()].sort());
  });

  it('transformerFromWeights on these weights is the float64 forward pass (biases, head_dim, scaled RoPE frequencies computed here), ≤ 1e-4', async () => {
    const model = transformerFromWeights({ ...config, mtpHeads: 2 }, weights, 'test');
    const got = await offset0Logits(model, tokens);
    model.dispose();
    const hs = config.headDim!;
    const reference: ReferenceConfig = {
      ...(config as ReferenceConfig),
      ropeLayout: 'halfSplit',
      invFreq: referenceInvFreq(hs, config.ropeTheta!, config.ropeScaling ?? null),
    };
    const want = referenceLogits(reference, weights, tokens);
    expect(Math.max(...want.map((row, t) => maxAbs(got.subarray(t * V, (t + 1) * V), row)))).toBeLessThan(1e-4);
  });

  it.each([
    ['unsharded F32', 'F32', 1],
    ['unsharded BF16', 'BF16', 1],
    ['3 shards of F16', 'F16', 3],
    ['2 shards of BF16', 'BF16', 2],
  ] as const)('%s: loadHfLlama gives the logits of the same (rounded) weights through transformerFromWeights, exactly', async (_, dtype, shards) => {
    const tensors = toHfTensors(weights, dtype);
    const files = shards === 1 ? { config: shape.hf, safetensors: writeSafetensors(tensors) } : { config: JSON.stringify(shape.hf), ...writeShards(tensors, shards) };
    const expected = transformerFromWeights({ ...config, mtpHeads: 3 }, rounded(weights, dtype), 'test');
    const want = await offset0Logits(expected, tokens);
    expected.dispose();
    await expectNoLeak(async () => {
      const { model, stopTokens, modelType } = await loadHfLlama(files, { mtpHeads: 3 });
      expect([stopTokens, modelType]).toEqual([shape.eos, shape.hf.model_type]);
      const cached = new CachedTransformer(model);
      expect(cached.stopTokens).toEqual(shape.eos);
      cached.dispose();
      const got = await offset0Logits(model, tokens);
      model.dispose();
      expect(maxAbs(got, want)).toBeLessThanOrEqual(1e-6);
    });
  });
});

describe('stop tokens, speculative decoding, memory', () => {
  const qwen = SHAPES[1]!;
  const config: TransformerConfig = { ...LLAMA_FAMILY, ...qwen.config };
  const weights = randomWeights(config, 7);
  const tensors = toHfTensors(weights, 'BF16');

  it("generation_config.json's eos_token_id replaces config.json's; the decoders stop there", async () => {
    const { model, stopTokens } = await loadHfLlama({ config: qwen.hf, ...writeShards(tensors, 2), generationConfig: { eos_token_id: [101, 102] } });
    expect(stopTokens).toEqual([101, 102]);
    const cached = new CachedTransformer(model);
    const free = await greedyDecode(cached, [5, 6, 7], { maxNewTokens: 40, stopTokens: [] });
    const stop = free.tokens[10]!; // a token the model does produce: make it the stop token
    const { model: stopping } = await loadHfLlama({ config: { ...qwen.hf, eos_token_id: stop }, safetensors: writeSafetensors(tensors) });
    const stoppingCached = new CachedTransformer(stopping);
    const greedy = await greedyDecode(stoppingCached, [5, 6, 7], { maxNewTokens: 40 });
    expect(greedy.finishReason).toBe('stop');
    expect(greedy.tokens).toEqual(free.tokens.slice(0, free.tokens.indexOf(stop) + 1));
    const fast = await speculativeDecode(stoppingCached, [5, 6, 7], { maxNewTokens: 40 });
    expect(fast.tokens).toEqual(greedy.tokens);
    for (const c of [cached, stoppingCached]) c.dispose();
    model.dispose();
    stopping.dispose();
  });

  it('a load allocates only the model: the peak tensor bytes are the loaded weights plus at most one weight in flight (no tensor per shard)', async () => {
    const before = tf.memory().numBytes;
    let resident = 0;
    let model: LayersModel | undefined;
    const peak = await peakBytesDuringAsync(async () => {
      model = (await loadHfLlama({ config: qwen.hf, ...writeShards(tensors, 3) }, { mtpHeads: 2 })).model;
      resident = tf.memory().numBytes - before;
    });
    model!.dispose();
    const largest = Math.max(...[...weights.values()].map((t) => t.data.length)); // the embedding, V·D
    expect(resident).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(resident + 4 * largest);
  });
});

describe('a folder URL', () => {
  let server: Server;
  let base: string;
  const served = new Map<string, Uint8Array | string>();
  const requests: string[] = [];
  const smol = SHAPES[0]!;
  const qwen = SHAPES[1]!;
  const smolWeights = randomWeights({ ...LLAMA_FAMILY, ...smol.config }, 3);
  const qwenWeights = randomWeights({ ...LLAMA_FAMILY, ...qwen.config }, 4);
  const sharded = writeShards(toHfTensors(qwenWeights, 'BF16'), 3);

  beforeAll(async () => {
    served.set('/smol/config.json', JSON.stringify(smol.hf));
    served.set('/smol/model.safetensors', writeSafetensors(toHfTensors(smolWeights, 'F16')));
    served.set('/qwen/config.json', JSON.stringify(qwen.hf));
    served.set('/qwen/generation_config.json', JSON.stringify({ bos_token_id: 100, eos_token_id: [101, 100] }));
    served.set('/qwen/model.safetensors.index.json', JSON.stringify(sharded.index));
    for (const [name, bytes] of Object.entries(sharded.shards)) served.set(`/qwen/${name}`, bytes);
    const [firstShard, secondShard] = Object.keys(sharded.shards).sort() as [string, string];
    served.set('/cut/config.json', JSON.stringify(qwen.hf));
    served.set('/cut/model.safetensors.index.json', JSON.stringify(sharded.index));
    served.set(`/cut/${firstShard}`, sharded.shards[firstShard]!);
    served.set(`/cut/${secondShard}`, sharded.shards[secondShard]!.subarray(0, 100));
    served.set('/bad/config.json', JSON.stringify(qwen.hf));
    served.set('/bad/model.safetensors.index.json', JSON.stringify({ weight_map: { ...sharded.index.weight_map, 'model.norm.weight': '../smol/model.safetensors' } }));
    server = createServer((req, res) => {
      requests.push(req.url!);
      const body = served.get(req.url!);
      res.writeHead(body === undefined ? 404 : 200).end(body ?? 'not found');
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((done) => server.close(() => done())));

  it('sharded: the index, each shard in order with a progress report, generation_config.json', async () => {
    const progress: HfLoadProgress[] = [];
    await expectNoLeak(async () => {
      const { model, stopTokens } = await loadHfLlama(`${base}/qwen/`, { onProgress: (p) => progress.push(p) });
      expect(stopTokens).toEqual([101, 100]);
      const expected = transformerFromWeights({ ...LLAMA_FAMILY, ...qwen.config }, rounded(qwenWeights, 'BF16'), 'test');
      expect(maxAbs(await offset0Logits(model, tokensFor(112, 20)), await offset0Logits(expected, tokensFor(112, 20)))).toBeLessThanOrEqual(1e-6);
      model.dispose();
      expected.dispose();
    });
    const names = Object.keys(sharded.shards).sort();
    const sizes = names.map((n) => sharded.shards[n]!.byteLength);
    expect(progress).toEqual(names.map((file, i) => ({ file, filesLoaded: i + 1, filesTotal: 3, bytesLoaded: sizes.slice(0, i + 1).reduce((a, b) => a + b, 0) })));
    expect(requests.filter((r) => r.endsWith('.safetensors'))).toEqual(names.map((n) => `/qwen/${n}`));
  });

  it('unsharded: no index (a 404) means model.safetensors; no generation_config.json means config.json eos', async () => {
    const progress: HfLoadProgress[] = [];
    const { model, stopTokens } = await loadHfLlama(`${base}/smol`, { onProgress: (p) => progress.push(p) });
    expect(stopTokens).toEqual([0]);
    expect(progress).toEqual([{ file: 'model.safetensors', filesLoaded: 1, filesTotal: 1, bytesLoaded: (served.get('/smol/model.safetensors') as Uint8Array).byteLength }]);
    model.dispose();
  });

  it('a shard that fails names its file and URL; nothing is left behind', async () => {
    const names = Object.keys(sharded.shards).sort();
    const progress: string[] = [];
    await expectThrowNoLeak(() => loadHfLlama(`${base}/cut`, { onProgress: (p) => progress.push(p.file) }), `loadHfLlama: ${names[1]} "${base}/cut/${names[1]}": file is truncated`);
    expect(progress).toEqual([names[0]]);
  });

  it('a missing folder names config.json and its URL; shard names outside the folder are refused', async () => {
    await expectThrowNoLeak(() => loadHfLlama(`${base}/nothing/`), `loadHfLlama: config.json "${base}/nothing/config.json": fetching failed with HTTP 404`);
    await expectThrowNoLeak(() => loadHfLlama(`${base}/bad/`), `loadHfLlama: model.safetensors.index.json "${base}/bad/model.safetensors.index.json": weight_map must name shard files inside the folder, but got "../smol/model.safetensors".`);
  });
});

describe('what the backend can hold is checked before anything is read', () => {
  const huge = { ...SHAPES[0]!.hf, hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 16, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128, vocab_size: 128256 };
  const bytes = 4 * (128256 * 4096 + 16 * (2 * 4096 + 4096 * 4096 * 2 + 2 * 4096 * 1024 + 3 * 4096 * 14336) + 4096 + 3 * (4096 * 4096 + 4096));

  afterAll(useCpu);

  it('wasm: a model over 4 GiB is refused naming both sizes, without reading the index or a shard', async () => {
    await import('@tensorflow/tfjs-backend-wasm');
    await tf.setBackend('wasm');
    await tf.ready();
    const unread = () => {
      throw new Error('the index was read');
    };
    const index = { get weight_map() { return unread(); } };
    await expectThrowNoLeak(
      () => loadHfLlama({ config: huge, index, shards: {} }),
      `loadHfLlama: files.config: the model's float32 weights must fit the wasm backend's memory of 4294901760 bytes, but they take ${bytes} bytes (${(bytes / 2 ** 30).toFixed(1)} GiB).`,
    );
  });

  it('cpu has no fixed bound: the same config gets as far as the index', async () => {
    await useCpu();
    await expectThrowNoLeak(() => loadHfLlama({ config: huge, index: { weight_map: {} }, shards: {} }), 'loadHfLlama: files.index: weight_map["model.embed_tokens.weight"] must name the shard holding the tensor (config.json expects it), but got "no entry".');
  });
});

describe('bad files fail before any tensor exists, naming the file and the field', () => {
  const qwen = SHAPES[1]!;
  const weights = randomWeights({ ...LLAMA_FAMILY, ...qwen.config }, 9);
  const tensors = toHfTensors(weights, 'F16');
  const { index, shards } = writeShards(tensors, 3);
  const [first, second, third] = Object.keys(shards).sort() as [string, string, string];
  const C = 'loadHfLlama: files.config';
  const I = 'loadHfLlama: files.index';
  const S = (file: string) => `loadHfLlama: files.shards["${file}"]`;
  const qBias = 'model.layers.0.self_attn.q_proj.bias';
  const withConfig = (patch: Record<string, unknown>) => () => loadHfLlama({ config: { ...qwen.hf, ...patch }, index, shards });
  const withIndex = (edit: (map: Record<string, string>) => void) => () => {
    const map = { ...index.weight_map };
    edit(map);
    return loadHfLlama({ config: qwen.hf, index: { weight_map: map }, shards });
  };
  const ofSecond = tensors.find((t) => index.weight_map[t.name] === second)!.name; // a tensor the second shard holds
  const cases: Array<[string, () => Promise<unknown>, string]> = [
    ['a shard missing', () => loadHfLlama({ config: qwen.hf, index, shards: { [first]: shards[first]!, [third]: shards[third]! } }), `loadHfLlama: files.shards["${second}"] must be given (the index maps`],
    ['a shard the index does not name', () => loadHfLlama({ config: qwen.hf, index, shards: { ...shards, 'extra.safetensors': shards[first]! } }), 'loadHfLlama: files.shards key "extra.safetensors" must be a shard the index names'],
    ['an index naming an absent tensor (mapped to a shard that lacks it)', withIndex((m) => (m[ofSecond] = first)), `${S(first)}: tensor "${ofSecond}" must be in the file (the index maps it to this file), but got "no such tensor".`],
    ['a shard holding a tensor the index maps elsewhere', () => loadHfLlama({ config: qwen.hf, index, shards: { ...shards, [first]: writeSafetensors([...tensors.filter((t) => index.weight_map[t.name] === first), tensors.find((t) => t.name === ofSecond)!]) } }), `${S(first)}: tensor "${ofSecond}" must be in the shard the index maps it to, but got "an unexpected tensor".`],
    ['an index without a tensor the config needs', withIndex((m) => delete m[qBias]), `${I}: weight_map["${qBias}"] must name the shard holding the tensor (config.json expects it), but got "no entry".`],
    ['an index naming a tensor no Qwen2 has', withIndex((m) => (m['model.layers.0.self_attn.o_proj.bias'] = first)), `${I}: weight_map key "model.layers.0.self_attn.o_proj.bias" must be a Qwen2ForCausalLM weight of config.json, but got "an unexpected tensor".`],
    ['an index that is not a map', () => loadHfLlama({ config: qwen.hf, index: { weight_map: [] }, shards }), `${I}: weight_map must be an object of tensor name → shard file name, but got [].`],
    ['a shard without the q/k/v biases Qwen2 has', () => loadHfLlama({ config: qwen.hf, safetensors: writeSafetensors(tensors.filter((t) => t.name !== qBias)) }), `loadHfLlama: files.safetensors: tensor "${qBias}" must be in the file (config.json expects it), but got "no such tensor".`],
    ['an unsupported rope scaling, by name', withConfig({ rope_scaling: { rope_type: 'yarn', factor: 4 } }), `${C}: rope_scaling.rope_type must be "default", "linear" or "llama3" (the RoPE scalings this loader runs), but got "yarn".`],
    ['an unsupported rope scaling, older spelling', withConfig({ rope_scaling: { type: 'dynamic', factor: 2 } }), `${C}: rope_scaling.type must be "default", "linear" or "llama3" (the RoPE scalings this loader runs), but got "dynamic".`],
    ['llama3 scaling without a field', withConfig({ rope_scaling: { rope_type: 'llama3', factor: 8, high_freq_factor: 4, original_max_position_embeddings: 8192 } }), `${C}: rope_scaling.low_freq_factor must be a positive number, but got undefined.`],
    ['llama3 scaling with the factors reversed', withConfig({ rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 1, original_max_position_embeddings: 8192 } }), `${C}: rope_scaling.high_freq_factor must be above low_freq_factor (4), but got 1.`],
    ['a transformers 5 rope_parameters of another type', withConfig({ rope_parameters: { rope_type: 'longrope', rope_theta: 10000 } }), `${C}: rope_parameters.rope_type must be "default", "linear" or "llama3"`],
    ['another model type', withConfig({ model_type: 'gemma' }), `${C}: model_type must be one of "llama", "mistral", "qwen2" (the Llama family this loader runs), but got "gemma".`],
    ['Qwen2 with sliding windows on', withConfig({ use_sliding_window: true }), `${C}: use_sliding_window must be false (sliding-window attention is not supported), but got true.`],
    ['Mistral with a sliding window', withConfig({ model_type: 'mistral', sliding_window: 4096 }), `${C}: sliding_window must be null (sliding-window attention is not supported), but got 4096.`],
    ['a sliding layer type', withConfig({ layer_types: ['full_attention', 'sliding_attention'] }), `${C}: layer_types[1] must be "full_attention" (sliding-window attention is not supported), but got "sliding_attention".`],
    ['an odd head_dim', withConfig({ head_dim: 7 }), `${C}: head_dim must be even (rotary positions turn pairs of dimensions), but got 7.`],
    ['partial rotary positions', withConfig({ partial_rotary_factor: 0.5 }), `${C}: partial_rotary_factor must be 1 (partial rotary positions are not supported), but got 0.5.`],
    ['files of two forms at once', () => loadHfLlama({ config: qwen.hf, index, shards, safetensors: shards[first]! } as never), 'loadHfLlama: files must be a folder URL, { config, safetensors } or { config, index, shards }, but got an object (Object).'],
    ['a bad progress callback', () => loadHfLlama({ config: qwen.hf, index, shards }, { onProgress: 'yes' as never }), 'loadHfLlama: options.onProgress must be a function, but got "yes".'],
  ];
  it.each(cases)('%s', async (_, load, message) => {
    await expectThrowNoLeak(load, new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`)); // the message starts so: file and field first
    expect(await peakBytesDuringAsync(load)).toBe(0);
  });

  it('the good files load (the cases above differ from them in one thing each)', async () => {
    const { model } = await loadHfLlama({ config: qwen.hf, index, shards });
    model.dispose();
  });
});
