/**
 * `npm run demo` — decode a held-out prompt with the committed reference model, once with
 * greedy decoding and once with self-speculative decoding (k = 4), and show which tokens the
 * draft heads got right.
 *
 *     npm run demo -- [--backend wasm|cpu] [--tokens 80] [--file lib.es2015.collection.d.ts] [--checkpoint DIR]
 *
 * Copy it: it imports the package by name, as an app does, and carries its own two node helpers
 * (reading a checkpoint folder without tfjs-node, and taking a prompt from a TypeScript lib file
 * the model never trained on). The app chooses the backend (here wasm by default); the library
 * never does.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs-layers';
import { formatParameterReport, greedyDecode, MultiTokenHead, parameterReport, speculativeDecode } from 'tfjs-mtp';
import { CachedTransformer, decodeBytes, encodeBytes, loadTransformer } from 'tfjs-mtp/models';

const HELP = `Decodes a held-out prompt greedily and speculatively (k = 4) and colours the accepted drafts.

usage: npm run demo -- [options]

  --backend <wasm|cpu>  the tfjs backend [default: wasm]
  --tokens <n>          new tokens to generate [default: 80]
  --file <name>         TypeScript lib file to take the 48-byte prompt from [default: lib.es2015.collection.d.ts]
  --checkpoint <dir>    folder with model.json + weights.bin [default: fixtures/tslib-k4]
  --help                print this text`;

/** The command line, checked (unknown flags and bad values end the process with a message). */
function options(): { backend: string; tokens: number; file: string; checkpoint: string } {
  try {
    const { values } = parseArgs({
      options: {
        backend: { type: 'string', default: 'wasm' },
        tokens: { type: 'string', default: '80' },
        file: { type: 'string', default: 'lib.es2015.collection.d.ts' },
        checkpoint: { type: 'string', default: fileURLToPath(new URL('../../fixtures/tslib-k4/', import.meta.url)) },
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
    return { backend: values.backend, tokens, file: values.file, checkpoint: values.checkpoint };
  } catch (error) {
    console.error(`demo: ${(error as Error).message}\nRun with --help for the options.`);
    process.exit(2);
  }
}

/** Loads a folder holding `model.json` + `weights.bin` (what `model.save` writes) in node, without tfjs-node. */
async function loadCheckpointFolder(dir: string): Promise<LayersModel> {
  const { modelTopology, weightsManifest } = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as tf.io.ModelJSON;
  const weightData = new Uint8Array(readFileSync(join(dir, 'weights.bin'))).buffer; // a copy: an ArrayBuffer of its own
  return loadTransformer({ load: async () => ({ modelTopology, weightSpecs: weightsManifest.flatMap((group) => group.weights), weightData }) });
}

/** The first `length` bytes of a TypeScript lib file from its first doc comment or declaration on. */
function promptFrom(file: string, length: number): number[] {
  const path = createRequire(import.meta.url).resolve(`typescript/lib/${file}`);
  const text = readFileSync(path, 'utf8').replace(/^\/\*![\s\S]*?\*\/\s*/, ''); // minus the license header
  const lines = text.split('\n');
  const first = lines.findIndex((line, i) => i > 0 && /^\s*(\/\*\*|interface |declare |readonly |\w+\()/.test(line));
  const start = lines.slice(0, Math.max(first, 0)).join('\n').length + (first > 0 ? 1 : 0);
  return encodeBytes(text.slice(start)).slice(0, length);
}

// ANSI colours per source: offset 0 (the verifier's own token) plain, drafts from offsets 1, 2, 3 coloured
const COLOURS = ['', '\x1b[32m', '\x1b[33m', '\x1b[35m'];
const RESET = '\x1b[0m';

/** The generated text with each token coloured by the offset that produced it. */
function highlight(tokens: number[], sources: number[]): string {
  let out = '';
  let i = 0;
  while (i < tokens.length) {
    let j = i; // group runs with the same source so multi-byte characters decode whole
    while (j < tokens.length && sources[j] === sources[i]) j++;
    const text = decodeBytes(tokens.slice(i, j));
    out += sources[i] === 0 ? text : `${COLOURS[sources[i]!] ?? ''}${text}${RESET}`;
    i = j;
  }
  return out;
}

async function main(): Promise<void> {
  const { backend, tokens: maxNewTokens, file, checkpoint } = options();
  if (!(await tf.setBackend(backend))) throw new Error(`demo: could not initialize the ${backend} backend.`);

  const layersModel = await loadCheckpointFolder(checkpoint);
  const model = new CachedTransformer(layersModel); // KV-cached view of the same weights
  const bytes = promptFrom(file, 48);
  const prompt = { file, bytes, text: decodeBytes(bytes) };
  const head = layersModel.layers.find((layer): layer is MultiTokenHead => layer instanceof MultiTokenHead)!;
  const [V, D] = [head.vocabSize, (head.input as SymbolicTensor).shape.at(-1) as number]; // the head maps [B, T, D] to [B, T, k, V]
  console.log(`tfjs-mtp demo — backend ${tf.getBackend()}, byte-level model (V = ${V}, D = ${D}, k = ${model.numHeads}, context ${model.maxLength})`);
  console.log(formatParameterReport(parameterReport({ vocabSize: V, hiddenSize: D, numHeads: head.numHeads, offset0Kind: head.headKinds[0], headKind: head.headKinds.slice(1) })));
  console.log(`\nheld-out prompt (from ${prompt.file}, never trained on):\n${prompt.text}`);

  await greedyDecode(model, prompt.bytes, { maxNewTokens: 8 }); // warm-up (kernel setup) — not timed
  await speculativeDecode(model, prompt.bytes, { maxNewTokens: 8 });
  const greedy = await greedyDecode(model, prompt.bytes, { maxNewTokens });
  const spec = await speculativeDecode(model, prompt.bytes, { maxNewTokens });

  console.log(`\n— greedy (one token per forward):\n${prompt.text}${decodeBytes(greedy.tokens)}`);
  console.log(
    `\n— speculative, k = 4 (plain: verifier's own token; ${COLOURS[1]}offset 1${RESET}, ${COLOURS[2]}offset 2${RESET}, ` +
      `${COLOURS[3]}offset 3${RESET}: drafts accepted):\n${prompt.text}${highlight(spec.tokens, spec.sources)}`,
  );
  const same = spec.tokens.join() === greedy.tokens.join();
  const s = spec.stats;
  console.log(`\nidentical to greedy: ${same ? 'yes' : 'NO'}`);
  console.log(`τ (tokens per forward): ${s.meanAcceptedLength.toFixed(2)} (${s.tokens} tokens in ${s.forwards} forwards; greedy: ${greedy.stats.forwards})`);
  console.log(`acceptance per offset: ${s.acceptanceRates.map((a, j) => `offset ${j + 1}: ${(100 * a).toFixed(0)}%`).join(', ')}`);
  console.log(
    `speed: greedy ${greedy.stats.tokensPerSecond.toFixed(0)} tok/s, speculative ${s.tokensPerSecond.toFixed(0)} tok/s ` +
      `→ ${(s.tokensPerSecond / greedy.stats.tokensPerSecond).toFixed(2)}× (tokens are bytes)`,
  );
  model.dispose();
  layersModel.dispose();
}

await main();
