import { defineConfig } from 'vitest/config';
import { ALL_TESTS, globOf, TIER_FILES, TIERS } from './tests/tiers.js';

/** The files of every tier but unit, which is the rest. */
const listed = Object.values(TIER_FILES).flat().map(globOf);

export default defineConfig({
  test: {
    environment: 'node',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // tfjs keeps one global engine per process: isolate files in forks, run them one at a time
    // per worker so that tf.memory() assertions are not disturbed by other files.
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
    // One project per tier (tests/tiers.ts): `vitest run` runs them all, `--project <tier>` one.
    projects: TIERS.map((tier) => ({
      extends: true,
      test: {
        name: tier,
        include: tier === 'unit' ? [ALL_TESTS] : TIER_FILES[tier].map(globOf),
        exclude: tier === 'unit' ? listed : [],
        // one Chromium and one bundle of the test pages for every browser file
        globalSetup: tier === 'browser' ? ['tests/browser/global_setup.ts'] : [],
      },
    })),
  },
});
