import { defineConfig } from 'vitest/config';
import { ALL_TESTS, globOf, TIER_FILES, TIERS } from './tests/tiers.js';

/** The files of every tier but unit, which is the rest. */
const listed = Object.values(TIER_FILES).flat().map(globOf);

/**
 * How a tier's files share the machine. A unit or models file is one busy process (Node with
 * tfjs-cpu/wasm): two at a time on two cores. A package file spawns npm, esbuild (tsup) and Node
 * processes that take several cores at once, and a browser file drives Chromium, whose renderer
 * and GPU process (SwiftShader) do too: run beside other files they slowed them and each other, and
 * every duration counted a neighbour's work. So the package tier, then the browser tier, run one
 * file at a time after the others (`groupOrder`), and each file's duration is its own cost.
 */
function workersOf(tier: (typeof TIERS)[number]): { maxWorkers: number; sequence: { groupOrder: number } } {
  if (tier === 'browser') return { maxWorkers: 1, sequence: { groupOrder: 2 } };
  if (tier === 'package') return { maxWorkers: 1, sequence: { groupOrder: 1 } };
  return { maxWorkers: 2, sequence: { groupOrder: 0 } };
}

export default defineConfig({
  test: {
    environment: 'node',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // tfjs keeps one global engine per process: isolate files in forks, run them one at a time
    // per worker so that tf.memory() assertions are not disturbed by other files.
    pool: 'forks',
    maxWorkers: 2, // the most at once; each tier's own count is workersOf's
    // One project per tier (tests/tiers.ts): `vitest run` runs them all, `--project <tier>` one.
    projects: TIERS.map((tier) => ({
      extends: true,
      test: {
        name: tier,
        ...workersOf(tier),
        include: tier === 'unit' ? [ALL_TESTS] : TIER_FILES[tier].map(globOf),
        exclude: tier === 'unit' ? listed : [],
        // one Chromium and one bundle of the test pages for every browser file
        globalSetup: tier === 'browser' ? ['tests/browser/global_setup.ts'] : [],
      },
    })),
  },
});
