/**
 * `npm run demo` — decode a prompt once with greedy decoding and once with self-speculative
 * decoding (k = 4), and show which tokens the draft heads got right. Two models:
 *
 *     npm run demo -- [--backend wasm|cpu] [--tokens 80] [--file lib.es2015.collection.d.ts] [--checkpoint DIR]
 *     npm run demo -- --llama2c DIR [--heads FILE] [--prompt "Once upon a time"] [--backend wasm|cpu] [--tokens 80]
 *     npm run demo -- --hf DIR [--heads FILE] [--prompt "Once upon a time"] [--backend wasm|cpu] [--tokens 80]
 *
 * The first runs the committed byte-level reference model on a held-out prompt; the second a
 * llama2.c checkpoint (DIR holds `stories260K.bin` + `tok512.bin`, Karpathy's `tinyllamas`) with
 * its BPE tokenizer; the third a Hugging Face model folder (config.json, model.safetensors or the
 * index and its shards, tokenizer.json, optionally tokenizer_config.json and
 * generation_config.json, e.g. SmolLM2-135M) with its own tokenizer, stopping at its EOS. Without
 * `--heads` offsets 1…3 are untrained (identity) heads, so few drafts are kept.
 *
 * Copy it: it imports the package by name, as an app does, and carries its own two node helpers
 * (reading a checkpoint folder or a Hugging Face folder without tfjs-node, and taking a prompt from a TypeScript lib file
 * the model never trained on). The app chooses the backend (here wasm by default); the library
 * never does.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs-layers';
import { formatParameterReport, greedyDecode, MultiTokenHead, parameterReport, speculativeDecode, type DecodeResult } from 'tfjs-mtp';
import { byteTokenizer, CachedTransformer, loadHfLlama, loadHfTokenizer, loadLlama2c, loadTransformer, type HfLlamaFiles, type Tokenizer } from 'tfjs-mtp/models';

const HELP = `Decodes a prompt greedily and speculatively (k = 4) and colours the accepted drafts.

usage: npm run demo -- [options]

  --backend <wasm|cpu>  the tfjs backend [default: wasm]
  --tokens <n>          new tokens to generate [default: 80]
  --file <name>         TypeScript lib file to take the 48-byte prompt from [default: lib.es2015.collection.d.ts]
  --checkpoint <dir>    folder with model.json + weights.bin [default: fixtures/tslib-k4]
  --llama2c <dir>       instead: a llama2.c model, folder with stories260K.bin + tok512.bin
  --hf <dir>            instead: a Hugging Face model folder (config.json, model.safetensors or its index
                        and shards, tokenizer.json; e.g. SmolLM2-135M)
  --prompt <text>       with --llama2c or --hf: the text to continue [default: Once upon a time]
  --heads <file>        with --llama2c or --hf: trained draft heads for that model (npm run train:heads;
                        e.g. fixtures/stories260k-heads/sequential-k4.bin for stories260K)
  --help                print this text`;

/** The command line, checked (unknown flags and bad values end the process with a message). */
function options(): { backend: string; tokens: number; file: string; checkpoint: string; llama2c: string; hf: string; prompt: string; heads: string } {
  try {
    const { values } = parseArgs({
      options: {
        backend: { type: 'string', default: 'wasm' },
        tokens: { type: 'string', default: '80' },
        file: { type: 'string', default: 'lib.es2015.collection.d.ts' },
        checkpoint: { type: 'string', default: fileURLToPath(new URL('../../fixtures/tslib-k4/', import.meta.url)) },
        llama2c: { type: 'string', default: '' },
        hf: { type: 'string', default: '' },
        prompt: { type: 'string', default: 'Once upon a time' },
        heads: { type: 'string', default: '' },
        help: { type: 'boolean', default: false },
      },
    });
    if (values.help) {
      console.log(HELP);
      process.exit(0);
    }
    const tokens = Number(values.tokens);
    if (values.backend !== 'wasm' && values.backend !== 'cpu') throw new Error(`--backend must be wasm or cpu, but got ${JSON.stringify(values.backend)}.`);
    if (!Number.isInteger(tokens) || tokens < 1) throw new Error(`--tokens must be a positive integer, but got ${JSON.stringify(values.tokens)}.`);
    if (values.llama2c && values.hf) throw new Error('--llama2c and --hf are two models: give one.');
    for (const file of values.llama2c ? LLAMA2C_FILES : []) {
      if (!existsSync(join(values.llama2c, file))) throw new Error(`--llama2c must be a folder holding ${LLAMA2C_FILES.join(' and ')}, but ${join(values.llama2c, file)} does not exist.`);
    }
    if (values.hf) {
      for (const file of ['config.json', 'tokenizer.json']) {
        if (!existsSync(join(values.hf, file))) throw new Error(`--hf must be a Hugging Face model folder holding config.json, model.safetensors and tokenizer.json, but ${join(values.hf, file)} does not exist.`);
      }
    }
    if (values.heads && !values.llama2c && !values.hf) throw new Error('--heads needs --llama2c or --hf (draft heads belong to the model they were trained on).');
    if (values.heads && !existsSync(values.heads)) throw new Error(`--heads must be a draft-heads file, but ${values.heads} does not exist.`);
    return { backend: values.backend, tokens, file: values.file, checkpoint: values.checkpoint, llama2c: values.llama2c, hf: values.hf, prompt: values.prompt, heads: values.heads };
  } catch (error) {
    console.error(`demo: ${(error as Error).message}\nRun with --help for the options.`);
    process.exit(2);
  }
}

/** The two files of a llama2.c model folder: the checkpoint and its tokenizer. */
const LLAMA2C_FILES = ['stories260K.bin', 'tok512.bin'] as const;

/** Loads a folder holding `model.json` + `weights.bin` (what `model.save` writes) in node, without tfjs-node. */
async function loadCheckpointFolder(dir: string): Promise<LayersModel> {
  const { modelTopology, weightsManifest } = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as tf.io.ModelJSON;
  const weightData = new Uint8Array(readFileSync(join(dir, 'weights.bin'))).buffer; // a copy: an ArrayBuffer of its own
  return loadTransformer({ load: async () => ({ modelTopology, weightSpecs: weightsManifest.flatMap((group) => group.weights), weightData }) });
}

/**
 * The checkpoint files of a Hugging Face folder as `save_pretrained` writes them: config.json,
 * model.safetensors.index.json and the shards it names (else model.safetensors), and
 * generation_config.json when there is one. (In a page, pass the folder's URL to loadHfLlama.)
 */
function hfFiles(dir: string): HfLlamaFiles {
  const read = (file: string) => new Uint8Array(readFileSync(join(dir, file)));
  const generation = existsSync(join(dir, 'generation_config.json')) ? { generationConfig: read('generation_config.json') } : {};
  if (!existsSync(join(dir, 'model.safetensors.index.json'))) return { config: read('config.json'), safetensors: read('model.safetensors'), ...generation };
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  const shards = Object.fromEntries([...new Set(Object.values(index.weight_map))].map((file) => [file, read(basename(file))])); // loadHfLlama checks them against the index
  return { config: read('config.json'), index, shards, ...generation };
}

/** The first `length` bytes of a TypeScript lib file from its first doc comment or declaration on. */
function promptFrom(file: string, length: number): number[] {
  const path = createRequire(import.meta.url).resolve(`typescript/lib/${file}`);
  const text = readFileSync(path, 'utf8').replace(/^\/\*![\s\S]*?\*\/\s*/, ''); // minus the license header
  const lines = text.split('\n');
  const first = lines.findIndex((line, i) => i > 0 && /^\s*(\/\*\*|interface |declare |readonly |\w+\()/.test(line));
  const start = lines.slice(0, Math.max(first, 0)).join('\n').length + (first > 0 ? 1 : 0);
  return byteTokenizer.encode(text.slice(start)).slice(0, length);
}

// ANSI colours per source: offset 0 (the verifier's own token) plain, drafts from offsets 1, 2, 3 coloured
const COLOURS = ['', '\x1b[32m', '\x1b[33m', '\x1b[35m'];
const RESET = '\x1b[0m';

/** A prompt and how to turn its ids (and the ids after it) into text. */
interface Text {
  label: string;
  ids: number[];
  /** The text of the prompt followed by `tokens`. */
  decode: (tokens: number[]) => string;
}

/** A prompt's ids and their text through any tokenizer of the package (bytes, llama2.c, Hugging Face). */
function promptText(label: string, ids: number[], tokenizer: Tokenizer): Text {
  return { label, ids, decode: (tokens) => tokenizer.decode([...ids, ...tokens]) };
}

/**
 * The generated text with each token coloured by the offset that produced it. Runs of one
 * source are decoded as the growing text minus what came before, so a character or a
 * leading space that spans two tokens comes out whole.
 */
function highlight(text: Text, tokens: number[], sources: number[]): string {
  let out = '';
  let before = text.decode([]);
  let i = 0;
  while (i < tokens.length) {
    let j = i;
    while (j < tokens.length && sources[j] === sources[i]) j++;
    const upTo = text.decode(tokens.slice(0, j));
    const piece = upTo.slice(before.length);
    out += sources[i] === 0 ? piece : `${COLOURS[sources[i]!] ?? ''}${piece}${RESET}`;
    before = upTo;
    i = j;
  }
  return out;
}

/** The reference model, its held-out prompt, and how its tokens read (bytes). */
async function byteLevel(checkpoint: string, file: string): Promise<{ layersModel: LayersModel; text: Text; kind: string; unit: string }> {
  const layersModel = await loadCheckpointFolder(checkpoint);
  const bytes = promptFrom(file, 48);
  const text = promptText(`held-out prompt (from ${file}, never trained on)`, bytes, byteTokenizer);
  return { layersModel, text, kind: 'byte-level model', unit: 'tokens are bytes' };
}

/** A llama2.c model (e.g. stories260K) and a prompt through its own tokenizer (BOS first). */
async function llama2c(dir: string, prompt: string, heads: string): Promise<{ layersModel: LayersModel; text: Text; kind: string; unit: string }> {
  const { model: layersModel, tokenizer } = await loadLlama2c(readFileSync(join(dir, LLAMA2C_FILES[0])), {
    tokenizer: readFileSync(join(dir, LLAMA2C_FILES[1])),
    ...(heads ? { draftHeads: new Uint8Array(readFileSync(heads)) } : { mtpHeads: 4 }), // trained heads carry their own k
  });
  const ids = tokenizer!.encode(prompt); // BOS first
  const text = promptText(`prompt (${ids.length} tokens, BOS included)`, ids, tokenizer!);
  const drafts = heads ? `draft heads ${basename(heads)}` : 'offsets 1…3 untrained';
  return { layersModel, text, kind: `llama2.c model ${basename(resolve(dir))}, ${drafts}`, unit: 'tokens are BPE pieces' };
}

/** A Hugging Face model (e.g. SmolLM2-135M) and a prompt through its tokenizer.json; the model stops at its EOS. */
async function huggingFace(dir: string, prompt: string, heads: string): Promise<{ layersModel: LayersModel; text: Text; kind: string; unit: string }> {
  const read = (file: string) => new Uint8Array(readFileSync(join(dir, file)));
  const tokenizer = loadHfTokenizer(read('tokenizer.json'), existsSync(join(dir, 'tokenizer_config.json')) ? read('tokenizer_config.json') : undefined);
  const { model: layersModel, modelType, stopTokens } = await loadHfLlama(hfFiles(dir), heads ? { draftHeads: new Uint8Array(readFileSync(heads)) } : { mtpHeads: 4 });
  const vocabSize = layersModel.outputs[0]!.shape.at(-1) as number; // logits [batch, seq, k, vocab]
  if (tokenizer.vocabSize > vocabSize) throw new Error(`demo: ${dir}: tokenizer.json has ${tokenizer.vocabSize} ids, more than the model's vocabulary of ${vocabSize}: another model's tokenizer?`);
  const ids = tokenizer.encode(prompt); // with the special tokens the tokenizer adds to a prompt (SmolLM2, Qwen2.5: none)
  const text = promptText(`prompt (${ids.length} tokens)`, ids, tokenizer);
  const drafts = heads ? `draft heads ${basename(heads)}` : 'offsets 1…3 untrained';
  const stops = stopTokens.length > 0 ? `stops at ${stopTokens.map((id) => JSON.stringify(tokenizer.decode([id], { skipSpecialTokens: false }))).join(', ')}` : 'no EOS in its config';
  return { layersModel, text, kind: `Hugging Face ${modelType} model ${basename(resolve(dir))}, ${drafts}, ${stops}`, unit: 'tokens are tokenizer.json pieces' };
}

async function main(): Promise<void> {
  const { backend, tokens: maxNewTokens, file, checkpoint, llama2c: llamaDir, hf, prompt: promptText, heads } = options();
  if (!(await tf.setBackend(backend))) throw new Error(`demo: could not initialize the ${backend} backend.`);

  const { layersModel, text, kind, unit } = llamaDir ? await llama2c(llamaDir, promptText, heads) : hf ? await huggingFace(hf, promptText, heads) : await byteLevel(checkpoint, file);
  const model = new CachedTransformer(layersModel); // KV-cached view of the same weights
  const head = layersModel.layers[layersModel.layers.length - 1]!; // the head maps [B, T, D] (and, sequential, the ids) to [B, T, k, V]
  const D = ([head.input].flat()[0] as SymbolicTensor).shape.at(-1) as number;
  console.log(`tfjs-mtp demo — backend ${tf.getBackend()}, ${kind} (V = ${model.vocabSize}, D = ${D}, k = ${model.numHeads}, context ${model.maxLength})`);
  if (head instanceof MultiTokenHead) {
    const { rank, headHiddenSize } = head.getConfig() as { rank?: number; headHiddenSize?: number }; // the widths of lowRank / mlp heads
    const kinds = { offset0Kind: head.headKinds[0], headKind: head.headKinds.slice(1), rank, headHiddenSize };
    console.log(formatParameterReport(parameterReport({ vocabSize: model.vocabSize, hiddenSize: D, numHeads: head.numHeads, ...kinds })));
  } else {
    console.log(`draft heads: ${head.getClassName()} (${head.countParams().toLocaleString('en-US')} parameters, offset 0 the model's own head)`);
  }
  console.log(`\n${text.label}:\n${text.decode([])}`);

  // Warm both paths up the same way (kernels, shapes, JIT, the 'auto' draft length's first step costs),
  // then time alternating runs and keep medians: one cold run would flatter whichever ran second.
  for (let i = 0; i < 2; i++) {
    await greedyDecode(model, text.ids, { maxNewTokens });
    await speculativeDecode(model, text.ids, { maxNewTokens });
  }
  const rounds = 5;
  const runs: { greedy: DecodeResult; spec: DecodeResult }[] = [];
  for (let i = 0; i < rounds; i++) runs.push({ greedy: await greedyDecode(model, text.ids, { maxNewTokens }), spec: await speculativeDecode(model, text.ids, { maxNewTokens }) });
  const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[xs.length >> 1]!;
  const { greedy, spec } = runs[runs.length - 1]!;
  const speedup = median(runs.map((r) => r.spec.stats.tokensPerSecond / r.greedy.stats.tokensPerSecond));

  const ended = greedy.finishReason === 'stop' ? ` [stopped at the model's stop token after ${greedy.tokens.length} tokens]` : '';
  console.log(`\n— greedy (one token per forward):\n${text.decode(greedy.tokens)}${ended}`);
  console.log(
    `\n— speculative, k = ${model.numHeads} (plain: verifier's own token; ${COLOURS[1]}offset 1${RESET}, ${COLOURS[2]}offset 2${RESET}, ` +
      `${COLOURS[3]}offset 3${RESET}: drafts accepted):\n${text.decode([])}${highlight(text, spec.tokens, spec.sources)}`,
  );
  const same = spec.tokens.join() === greedy.tokens.join();
  const s = spec.stats;
  console.log(`\nidentical to greedy: ${same ? 'yes' : 'NO'}`);
  console.log(`τ (tokens per forward): ${s.meanAcceptedLength.toFixed(2)} (${s.tokens} tokens in ${s.forwards} forwards; greedy: ${greedy.stats.forwards})`);
  console.log(`acceptance per offset: ${s.acceptanceRates.map((a, j) => `offset ${j + 1}: ${(100 * a).toFixed(0)}%`).join(', ')}`);
  console.log(`drafts per step: ${(s.draftNodes! / s.forwards).toFixed(2)} on average (draftLength 'auto': chosen from the step costs measured while decoding)`);
  console.log(
    `speed (median of ${rounds} alternating runs after warm-up): greedy ${median(runs.map((r) => r.greedy.stats.tokensPerSecond)).toFixed(0)} tok/s, ` +
      `speculative ${median(runs.map((r) => r.spec.stats.tokensPerSecond)).toFixed(0)} tok/s → ${speedup.toFixed(2)}× (${unit})`,
  );
  if (speedup > 1.05 * s.meanAcceptedLength) {
    // a step does at least a greedy step's work: more than τ× is a timing error (a loaded machine), not a result
    console.log(`measurement error: ${speedup.toFixed(2)}× is above τ = ${s.meanAcceptedLength.toFixed(2)}, which no decoder can reach; re-run on a quieter machine.`);
    process.exitCode = 1;
  }
  model.dispose();
  layersModel.dispose();
}

await main();
