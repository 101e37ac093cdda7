/**
 * `npm run demo` — decode a held-out prompt with the committed reference model, once with
 * greedy decoding and once with self-speculative decoding (k = 4), and show which tokens the
 * draft heads got right.
 *
 *     npm run demo -- [--backend wasm|cpu] [--tokens 80] [--prompt 2]
 *
 * The app chooses the backend (here wasm by default); the library never does.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { formatParameterReport, greedyDecode, parameterReport, speculativeDecode } from '../../src/index.js';
import { CachedTransformer, decodeBytes } from '../../src/models/index.js';
import { argValue, heldOutPrompts, loadReferenceModel, useBackend } from '../../bench/lib.js';

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
  const argv = process.argv.slice(2);
  await useBackend(argValue(argv, '--backend', 'wasm'));
  const maxNewTokens = Number(argValue(argv, '--tokens', '80'));
  const promptIndex = Number(argValue(argv, '--prompt', '1'));

  const layersModel = await loadReferenceModel();
  const model = new CachedTransformer(layersModel); // KV-cached view of the same weights
  const prompts = heldOutPrompts(promptIndex + 1, 48);
  const prompt = prompts[promptIndex]!;
  const [V, D] = layersModel.getLayer('wte').getWeights()[0]!.shape as [number, number];
  console.log(`tfjs-mtp demo — backend ${tf.getBackend()}, byte-level model (V = ${V}, D = ${D}, k = ${model.numHeads}, context ${model.maxLength})`);
  console.log(formatParameterReport(parameterReport({ vocabSize: V, hiddenSize: D, numHeads: model.numHeads, headKind: 'residual' })));
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
