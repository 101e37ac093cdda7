/**
 * `loadHfLlama` on stories260K written in Hugging Face `LlamaForCausalLM` layout inside the test
 * (matrices `[out, in]`, q/k rows permuted as transformers' conversion script does, `rotate_half`
 * positions): the same logits as `loadLlama2c` for F32; for F16/BF16 the float64 reference on
 * the rounded weights (so the conversion is exact) and a bounded distance to F32; sharded copies
 * (F32 decodes until it stops where run.c stops, F16 decodes the README text, BF16 is exact);
 * config defaults, untied heads, leaks, and one error per bad config or tensor file.
 */
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode } from '../../src/index.js';
import { CachedTransformer, loadHfLlama, loadLlama2c, Llama2cTokenizer } from '../../src/models/index.js';
import { parseHfLlama } from '../../src/models/hf_llama.js';
import { parseLlama2c, type ParsedLlama2c } from '../../src/models/llama2c.js';
import { useCpu } from '../helpers/backend.js';
import { offset0Logits } from '../helpers/models.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';
import { referenceLogits, type ReferenceConfig } from '../helpers/llama_reference.js';
import {
  bfloat16ToFloat,
  floatToBfloat16,
  floatToHalf,
  halfToFloat,
  readStories,
  storiesAvailable,
  storiesReference,
  toHfLayout,
  writeSafetensors,
  writeShards,
  type StoriesReference,
  type TensorToWrite,
} from '../helpers/stories.js';

type Dtype = TensorToWrite['dtype'];
const C = 'loadHfLlama: files.config';
const S = 'loadHfLlama: files.safetensors';

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe.skipIf(!storiesAvailable('tests/models/hf_llama'))('loadHfLlama on stories260K in Hugging Face layout', () => {
  let ref: StoriesReference;
  let parsed: ParsedLlama2c;
  let tokens: number[];
  let llama2cLogits: Float32Array;
  const hf = {} as Record<Dtype, { config: Record<string, unknown>; tensors: TensorToWrite[]; safetensors: Uint8Array }>;

  /** Greedy decoding of the README prompt gives the README's text (run.c's); disposes the model. */
  async function expectReadmeText({ model }: { model: LayersModel }): Promise<void> {
    const cached = new CachedTransformer(model);
    const result = await greedyDecode(cached, ref.promptIds, { maxNewTokens: ref.steps + 1 - ref.promptIds.length });
    const tok = Llama2cTokenizer.fromBytes(readStories('tokenizer'), parsed.header.vocabSize);
    expect(tok.decode([...ref.promptIds, ...result.tokens])).toBe(ref.greedyText);
    cached.dispose();
    model.dispose();
  }

  beforeAll(async () => {
    await useCpu();
    ref = storiesReference();
    const bin = readStories('checkpoint');
    parsed = parseLlama2c(bin);
    const tok = Llama2cTokenizer.fromBytes(readStories('tokenizer'), parsed.header.vocabSize);
    tokens = tok.encode(`${ref.greedyText} The end. Tom and Sue ran to the big tree, and they laughed!`);
    const { model } = await loadLlama2c(bin);
    llama2cLogits = await offset0Logits(model, tokens);
    model.dispose();
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      const layout = toHfLayout(parsed, dtype);
      hf[dtype] = { ...layout, safetensors: writeSafetensors(layout.tensors, { format: 'pt' }) };
    }
  });

  it('F32: the same logits as loadLlama2c (≤ 1e-5), through the permuted q/k rows and rotate_half positions', async () => {
    await expectNoLeak(async () => {
      const { model } = await loadHfLlama({ config: hf.F32.config, safetensors: hf.F32.safetensors });
      const got = await offset0Logits(model, tokens);
      model.dispose();
      expect(maxAbs(got, llama2cLogits)).toBeLessThanOrEqual(1e-5);
    });
  });

  /**
   * F16/BF16: the file holds rounded weights, so (1) the loaded model must match the float64
   * reference run on exactly those rounded values (1e-4, as for F32: the conversion is exact),
   * and (2) its distance to the F32 logits is the rounding's effect on the model, bounded by the
   * format's relative precision ε (2⁻¹¹ for F16, 2⁻⁸ for BF16) times the largest logit
   * magnitude times a depth factor of 20 (5 layers × 4 roundings on each residual path) — a
   * bound the measured errors stay well inside (printed).
   */
  it.each([
    ['F16', 2 ** -11],
    ['BF16', 2 ** -8],
  ] as const)('%s: exact conversion (float64 on the rounded weights, 1e-4) and within the format precision of F32', async (dtype, epsilon) => {
    const round = dtype === 'F16' ? (v: number) => halfToFloat(floatToHalf(v)) : (v: number) => bfloat16ToFloat(floatToBfloat16(v));
    const rounded = new Map([...parsed.weights].map(([name, t]) => [name, { shape: t.shape, data: t.data.map(round) }]));
    const expected = referenceLogits(parsed.config as ReferenceConfig, rounded, tokens);
    await expectNoLeak(async () => {
      const { model } = await loadHfLlama({ config: JSON.stringify(hf[dtype].config), safetensors: hf[dtype].safetensors.buffer as ArrayBuffer });
      const got = await offset0Logits(model, tokens);
      model.dispose();
      const V = parsed.header.vocabSize;
      const exactError = Math.max(...expected.map((row, t) => maxAbs(got.subarray(t * V, (t + 1) * V), row)));
      const drift = maxAbs(got, llama2cLogits);
      const bound = 20 * epsilon * Math.max(...llama2cLogits.map(Math.abs));
      console.log(`${dtype}: |loaded − float64(rounded)| ${exactError.toExponential(2)}; |${dtype} − F32| ${drift.toExponential(2)} (bound ${bound.toExponential(2)})`);
      expect(exactError).toBeLessThan(1e-4);
      expect(drift).toBeGreaterThan(0); // the rounding is real …
      expect(drift).toBeLessThan(bound); // … and bounded by the format's precision
    });
  });

  it('F16 still greedy-decodes the README text (its top-1 margins exceed the F16 drift)', async () => {
    await expectReadmeText(await loadHfLlama({ config: hf.F16.config, safetensors: hf.F16.safetensors }));
  });

  it('reads the config fields (and transformers defaults for the optional ones)', () => {
    const { config } = parseHfLlama(hf.F32.config, hf.F32.safetensors);
    expect(config).toMatchObject({ ...parsed.config, ropeLayout: 'halfSplit' });
    const { rope_theta: _theta, rms_norm_eps: _eps, tie_word_embeddings: _tie, ...minimal } = hf.F32.config;
    const defaults = parseHfLlama(minimal, writeSafetensors([...hf.F32.tensors, { ...hf.F32.tensors[0]!, name: 'lm_head.weight' }])).config;
    expect(defaults).toMatchObject({ ropeTheta: 10000, normEpsilon: 1e-6, tiedEmbeddings: false });
  });

  describe('sharded, F16 and BF16: the same model', () => {
    /** run.c stops at BOS, which ends a story: the converted checkpoint's generation_config.json lists BOS and EOS. */
    const generationConfig = { bos_token_id: 1, eos_token_id: [1, 2] };

    it('F32 in 3 shards: greedy decoding stops where run.c stops (loadLlama2c), with its tokens; speculative decoding equals it', async () => {
      const { model: reference } = await loadLlama2c(readStories('checkpoint'));
      const expected = await greedyDecode(new CachedTransformer(reference), ref.promptIds, { maxNewTokens: 500 });
      reference.dispose();
      expect(expected.finishReason).toBe('stop');
      const { model, stopTokens } = await loadHfLlama({ config: { ...hf.F32.config, bos_token_id: 1, eos_token_id: 2 }, ...writeShards(hf.F32.tensors, 3), generationConfig });
      expect(stopTokens).toEqual([1, 2]);
      const cached = new CachedTransformer(model);
      const greedy = await greedyDecode(cached, ref.promptIds, { maxNewTokens: 500 });
      expect(greedy.finishReason).toBe('stop');
      expect(greedy.tokens).toEqual(expected.tokens);
      expect(greedy.tokens.at(-1)).toBe(1); // the BOS that starts the next story
      const tok = Llama2cTokenizer.fromBytes(readStories('tokenizer'), parsed.header.vocabSize);
      expect(tok.decode([...ref.promptIds, ...greedy.tokens]).startsWith(ref.greedyText)).toBe(true);
      cached.truncate(0);
      expect((await speculativeDecode(cached, ref.promptIds, { maxNewTokens: 500 })).tokens).toEqual(greedy.tokens);
      cached.dispose();
      model.dispose();
    });

    it('F16 in 2 shards decodes the README text', async () => {
      await expectReadmeText(await loadHfLlama({ config: hf.F16.config, ...writeShards(hf.F16.tensors, 2), generationConfig }));
    });

    it('BF16 in 4 shards: the float64 model on the rounded weights (1e-4): the conversion is exact', async () => {
      const rounded = new Map([...parsed.weights].map(([name, t]) => [name, { shape: t.shape, data: t.data.map((v) => bfloat16ToFloat(floatToBfloat16(v))) }]));
      const expected = referenceLogits(parsed.config as ReferenceConfig, rounded, tokens.slice(0, 40));
      await expectNoLeak(async () => {
        const { model } = await loadHfLlama({ config: hf.BF16.config, ...writeShards(hf.BF16.tensors, 4) });
        const got = await offset0Logits(model, tokens.slice(0, 40));
        model.dispose();
        const V = parsed.header.vocabSize;
        expect(Math.max(...expected.map((row, t) => maxAbs(got.subarray(t * V, (t + 1) * V), row)))).toBeLessThan(1e-4);
      });
    });
  });

  describe('untied heads, tied copies and ignored buffers', () => {
    let untiedModel: LayersModel | undefined;
    afterAll(() => untiedModel?.dispose());

    it('tie_word_embeddings false: lm_head.weight is offset 0', async () => {
      const embedding = hf.F32.tensors[0]!;
      const head = { ...embedding, name: 'lm_head.weight', data: Float32Array.from(embedding.data, (v, i) => v * (1 + (i % 5) / 8)) };
      const safetensors = writeSafetensors([...hf.F32.tensors, head]);
      const { vocabSize: V, dim: D } = parsed.header;
      const weights = new Map(parsed.weights);
      const output = new Float32Array(V * D);
      for (let v = 0; v < V; v++) for (let d = 0; d < D; d++) output[d * V + v] = head.data[v * D + d]!;
      weights.set('output.weight', { shape: [D, V], data: output });
      const expected = referenceLogits({ ...(parsed.config as ReferenceConfig), tiedEmbeddings: false }, weights, tokens.slice(0, 20)).at(-1)!;
      untiedModel = (await loadHfLlama({ config: { ...hf.F32.config, tie_word_embeddings: false }, safetensors })).model;
      const got = await offset0Logits(untiedModel, tokens.slice(0, 20));
      expect(maxAbs(got.subarray(19 * V), expected)).toBeLessThan(1e-4);
      expect(maxAbs(got.subarray(19 * V), llama2cLogits.subarray(19 * V, 20 * V))).toBeGreaterThan(0.1);
    });

    it('a stored copy of the tied head and rotary_emb.inv_freq buffers are ignored', async () => {
      const extra: TensorToWrite[] = [
        { ...hf.F32.tensors[0]!, name: 'lm_head.weight' },
        { name: 'model.layers.0.self_attn.rotary_emb.inv_freq', dtype: 'F32', shape: [4], data: [1, 0.1, 0.01, 0.001] },
      ];
      await expectNoLeak(async () => {
        const { model } = await loadHfLlama({ config: hf.F32.config, safetensors: writeSafetensors([...hf.F32.tensors, ...extra]) });
        expect(maxAbs(await offset0Logits(model, tokens.slice(0, 8)), llama2cLogits.subarray(0, 8 * parsed.header.vocabSize))).toBeLessThanOrEqual(1e-5);
        model.dispose();
      });
    });
  });

  describe('bad files fail fast, naming the file and the field, leaking nothing', () => {
    const withConfig = (patch: Record<string, unknown>) => () => loadHfLlama({ config: { ...hf.F32.config, ...patch }, safetensors: hf.F32.safetensors });
    const withTensors = (edit: (tensors: TensorToWrite[]) => TensorToWrite[]) => () => loadHfLlama({ config: hf.F32.config, safetensors: writeSafetensors(edit([...hf.F32.tensors])) });
    const q0 = 'model.layers.0.self_attn.q_proj.weight';
    const cases: Array<[string, () => () => Promise<unknown>, string]> = [
      ['config not JSON', () => () => loadHfLlama({ config: '{"hidden_size": ', safetensors: hf.F32.safetensors }), `${C}: must be JSON, but parsing failed`],
      ['config bytes not JSON', () => () => loadHfLlama({ config: new TextEncoder().encode('[1]'), safetensors: hf.F32.safetensors }), `${C}: config must be a JSON object, but got [1].`],
      ['a missing size field', () => withConfig({ hidden_size: undefined }), `${C}: hidden_size must be a positive integer at most 65536, but got undefined.`],
      ['an absurd vocabulary', () => withConfig({ vocab_size: 2 ** 40 }), `${C}: vocab_size must be a positive integer at most 1048576, but got 1099511627776.`],
      ['kv heads not dividing heads', () => withConfig({ num_key_value_heads: 3 }), `${C}: num_key_value_heads must divide num_attention_heads (8), but got 3.`],
      ['an odd head size', () => withConfig({ num_attention_heads: 64, num_key_value_heads: 64 }), `${C}: hidden_size must be num_attention_heads (64) × an even head size (or head_dim given), but got 64.`],
      ['a head_dim the tensors do not have', () => withConfig({ head_dim: 16 }), `${S}: tensor "${q0}" shape must be [128, 64] (config.json), but got [64, 64].`],
      ['another activation', () => withConfig({ hidden_act: 'gelu' }), `${C}: hidden_act must be "silu" (SwiGLU), but got "gelu".`],
      ['an unsupported RoPE scaling', () => withConfig({ rope_scaling: { type: 'dynamic', factor: 2 } }), `${C}: rope_scaling.type must be "default", "linear" or "llama3" (the RoPE scalings this loader runs), but got "dynamic".`],
      ['attention biases the file does not have', () => withConfig({ attention_bias: true }), `${S}: tensor "model.layers.0.self_attn.q_proj.bias" must be in the file (config.json expects it), but got "no such tensor".`],
      ['a negative epsilon', () => withConfig({ rms_norm_eps: -1 }), `${C}: rms_norm_eps must be a positive number, but got -1.`],
      ['tie flag not a boolean', () => withConfig({ tie_word_embeddings: 'yes' }), `${C}: tie_word_embeddings must be a boolean, but got "yes".`],
      ['intermediate size that disagrees with the tensors', () => withConfig({ intermediate_size: 171 }), `${S}: tensor "model.layers.0.mlp.gate_proj.weight" shape must be [171, 64] (config.json), but got [172, 64].`],
      ['more layers than the file has', () => withConfig({ num_hidden_layers: 6 }), `${S}: tensor "model.layers.5.input_layernorm.weight" must be in the file (config.json expects it), but got "no such tensor".`],
      ['untied without lm_head', () => withConfig({ tie_word_embeddings: false }), `${S}: tensor "lm_head.weight" must be in the file (config.json expects it), but got "no such tensor".`],
      ['a missing tensor', () => withTensors((t) => t.filter((x) => x.name !== q0)), `${S}: tensor "${q0}" must be in the file (config.json expects it), but got "no such tensor".`],
      ['a transposed tensor', () => withTensors((t) => t.map((x) => (x.name === 'model.layers.2.mlp.down_proj.weight' ? { ...x, shape: [172, 64] } : x))), `${S}: tensor "model.layers.2.mlp.down_proj.weight" shape must be [64, 172] (config.json), but got [172, 64].`],
      ['an unexpected tensor', () => withTensors((t) => [...t, { name: 'model.layers.0.self_attn.q_proj.bias', dtype: 'F32', shape: [64], data: new Float32Array(64) }]), `${S}: tensor "model.layers.0.self_attn.q_proj.bias" must be a LlamaForCausalLM weight of config.json, but got "an unexpected tensor".`],
      ['a NaN weight (F16)', () => () => loadHfLlama({ config: hf.F16.config, safetensors: nanAt(hf.F16.safetensors, 'model.norm.weight', 5) }), `${S}: tensor "model.norm.weight"[5] must be finite, but got NaN.`],
      ['an unknown dtype', () => () => loadHfLlama({ config: hf.F32.config, safetensors: retyped(hf.F32.safetensors, 'F32', 'Q8_0') }), `${S}: tensor "model.embed_tokens.weight" dtype must be F32, F16 or BF16 (unknown dtype), but got "Q8_0".`],
      ['a header claiming gigabytes', () => () => loadHfLlama({ config: hf.F32.config, safetensors: hugeHeader(hf.F32.safetensors) }), `${S}: header size must be at most 100000000 bytes, but got 8589934592.`],
      ['a truncated file', () => () => loadHfLlama({ config: hf.F32.config, safetensors: hf.F32.safetensors.subarray(0, hf.F32.safetensors.length - 4) }), `${S}: tensor "model.norm.weight" data_offsets must lie inside the file's`],
      ['not files', () => () => loadHfLlama(42 as never), 'loadHfLlama: files must be a folder URL, { config, safetensors } or { config, index, shards }, but got 42.'],
      ['a bad option', () => () => loadHfLlama({ config: hf.F32.config, safetensors: hf.F32.safetensors }, { mtpHeads: 65 }), 'loadHfLlama: options.mtpHeads must be a positive integer at most 64, but got 65.'],
    ];
    it.each(cases)('%s', async (_, make, message) => {
      const start = performance.now();
      await expectThrowNoLeak(make(), message);
      expect(performance.now() - start).toBeLessThan(1000);
    });
  });
});

/** A copy of a safetensors file with element `index` of tensor `name` (F16) set to NaN. */
function nanAt(file: Uint8Array, name: string, index: number): Uint8Array {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const headerBytes = view.getUint32(0, true);
  const entry = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + headerBytes)))[name];
  const out = file.slice();
  new DataView(out.buffer).setUint16(8 + headerBytes + entry.data_offsets[0] + 2 * index, 0x7e00, true);
  return out;
}

/** A copy whose header renames the first dtype `from` to `to` (offsets are relative to the data, so they stay valid). */
function retyped(file: Uint8Array, from: string, to: string): Uint8Array {
  const headerBytes = new DataView(file.buffer, file.byteOffset).getUint32(0, true);
  const header = new TextDecoder().decode(file.subarray(8, 8 + headerBytes)).replace(`"dtype":"${from}"`, `"dtype":"${to}"`);
  const out = new Uint8Array(8 + header.length + file.length - 8 - headerBytes);
  out.set(file.subarray(0, 8));
  out.set(new TextEncoder().encode(header), 8);
  out.set(file.subarray(8 + headerBytes), 8 + header.length);
  new DataView(out.buffer).setUint32(0, header.length, true);
  return out;
}

/** A copy whose 8-byte header size claims 8 GiB. */
function hugeHeader(file: Uint8Array): Uint8Array {
  const out = file.slice();
  const view = new DataView(out.buffer);
  view.setUint32(0, 0, true);
  view.setUint32(4, 2, true);
  return out;
}
