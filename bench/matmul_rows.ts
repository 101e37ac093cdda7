/**
 * `npm run bench:rows` — what one matMul costs per number of rows, on wasm (XNNPACK) and cpu: the
 * premise under every speculative step's price. A step verifies m + 1 rows where greedy decoding
 * feeds one, so if m + 1 rows cost what one row costs, speculation is nearly free; if they cost
 * 2×, a step costs about 2× a greedy step before any drafting. Prints one markdown table: median
 * ms of `matMul([M, D], [D, N])` with a persistent pre-transposed `[D, N]` weight (the layout the
 * model's matMuls use) for the shapes of the stories15M and stories110M unembeddings and MLPs.
 *
 *     npm run bench:rows -- [--backends wasm,cpu] [--rows 1,2,3,4,8,16] [--repeats 50]
 */
import * as tf from '@tensorflow/tfjs-core';
import { parseCommandLine } from '../tools/args.js';
import { NODE_BACKENDS, useBackend, type NodeBackend } from '../tools/backend.js';
import { median } from '../tools/stats.js';

const COMMAND = {
  name: 'bench:rows',
  usage: 'npm run bench:rows -- [options]',
  summary: 'Median ms of one matMul per number of rows (wasm and cpu), at the shapes of the stories15M/110M unembeddings and MLPs.',
  options: {
    backends: { type: 'strings', default: NODE_BACKENDS, choices: NODE_BACKENDS, help: 'backends to measure, in order' },
    rows: { type: 'numbers', default: [1, 2, 3, 4, 8, 16], help: 'row counts M to time (integers in [1, 256])' },
    repeats: { type: 'number', default: 50, integer: true, min: 3, help: 'timed calls per cell (after 10 untimed)' },
  },
} as const;

/** [D, N] weight shapes: the unembedding (V = 32,000) and the MLP's first matrix of each shape. */
const SHAPES: [string, number, number][] = [
  ['stories15M unembedding', 288, 32000],
  ['stories15M MLP (w1)', 288, 768],
  ['stories110M unembedding', 768, 32000],
  ['stories110M MLP (w1)', 768, 2048],
];

async function main(): Promise<void> {
  const args = parseCommandLine(COMMAND, process.argv.slice(2));
  const rows = args.rows;
  for (const m of rows) if (!Number.isInteger(m) || m < 1 || m > 256) throw new Error(`bench:rows: --rows must be integers in [1, 256], but got ${m}.`);
  const lines = [`| backend | weight [D, N] | ${rows.map((m) => `${m} row${m > 1 ? 's' : ''}`).join(' | ')} | ${rows.length > 1 ? `${rows.find((m) => m > 1)} ÷ 1` : ''} |`, `|---|---|${rows.map(() => '---:').join('|')}|---:|`];
  for (const backend of args.backends as NodeBackend[]) {
    await useBackend(backend);
    for (const [name, D, N] of SHAPES) {
      const w = tf.randomNormal([D, N], 0, 0.02, 'float32', 1) as tf.Tensor2D; // persistent, as the model's pre-transposed weights
      const ms: number[] = [];
      for (const m of rows) {
        const x = tf.randomNormal([m, D], 0, 1, 'float32', 2) as tf.Tensor2D;
        const time = () => {
          const t0 = performance.now();
          tf.matMul(x, w).dispose(); // on wasm and cpu the kernel runs inside the call
          return performance.now() - t0;
        };
        const repeats = backend === 'cpu' ? Math.max(3, Math.floor(args.repeats / 10)) : args.repeats;
        for (let i = 0; i < 10; i++) time();
        ms.push(median(Array.from({ length: repeats }, time)));
        x.dispose();
        process.stderr.write(`  ${backend} ${name} ${m} rows: ${ms.at(-1)!.toFixed(3)} ms\n`);
      }
      w.dispose();
      const second = rows.findIndex((m) => m > 1);
      lines.push(`| ${backend} | ${name} [${D}, ${N.toLocaleString('en-US')}] | ${ms.map((x) => x.toFixed(3)).join(' | ')} | ${second >= 0 && rows[0] === 1 ? `${(ms[second]! / ms[0]!).toFixed(2)}×` : '–'} |`);
    }
  }
  console.log(`matMul([M, D], [D, N]) median ms, ${args.repeats} calls per cell on wasm (a tenth on cpu) after 10 untimed; ${new Date().toISOString()}, Node ${process.version}.\n`);
  console.log(lines.join('\n'));
}

await main();
