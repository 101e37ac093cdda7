import { defineConfig } from 'vitest/config';
import { ALL_TESTS, globOf, TIER_FILES, TIERS } from './tests/tiers.js';

/** The files of every tier but unit, which is the rest. */
const listed = Object.values(TIER_FILES).flat().map(globOf);

/**
 * How a tier's files share the machine. A unit or models file is one Node thread (tfjs-cpu/wasm):
 * two at a time on two cores. A browser or package file drives processes that use several cores of
 * their own (Chromium's renderer and GPU process with SwiftShader; npm, tsup, tsc, attw), so two at
 * a time only slow each other: they run one at a time, after the Node tiers (`groupOrder`), and
 * each file's duration is its own cost rather than its cost plus its neighbour's.
 */
function workersOf(tier: (typeof TIERS)[number]): { maxWorkers: number; sequence: { groupOrder: number } } {
  return tier === 'browser' || tier === 'package' ? { maxWorkers: 1, sequence: { groupOrder: 1 } } : { maxWorkers: 2, sequence: { groupOrder: 0 } };
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
