/**
 * The test tiers: one vitest project each (vitest.config.ts), one at a time with
 * `npm run test:<tier>`, all of them in one run by `npm test` (which builds dist/ first).
 *
 * - unit: everything not listed below — toy models and hand-made tensors, no build, no browser,
 *   no file outside the repository. The tier to run while editing.
 * - models: real models and tokenizers read from `<repo>/../shared/` (stories260K, tokenizers).
 * - browser: pages in Chromium (/usr/bin/chromium, launched once for the tier).
 * - package: the built `dist/` (its exports, the `tfjs-mtp` command, the doc snippets).
 *
 * A file belongs to the first tier it needs, in the order browser, package, models (a browser page
 * that reads stories260K is a browser test). tests/tiers.test.ts checks every file against what it
 * uses, so a new test file that reads ../shared or dist/ and is not listed here fails there.
 */

/** A tier's files: paths of test files, or folders ending in `/` (every test file below them). */
export const TIER_FILES = {
  browser: ['tests/browser/'],
  package: [
    'tests/package/',
    'tests/docs/snippets.test.ts',
    'tests/training/train_heads_cli.test.ts',
    'tests/training/train_heads_hf.test.ts',
    'tests/training/wasm_kernels_package.test.ts',
  ],
  models: [
    'tests/decoding/tree_eagle_stories.test.ts',
    'tests/examples/demo_hf.test.ts',
    'tests/models/adapter.test.ts',
    'tests/models/draft_heads.test.ts',
    'tests/models/draft_vocab.test.ts',
    'tests/models/heads_any_model.test.ts',
    'tests/models/hf_llama.test.ts',
    'tests/models/hf_tok512.test.ts',
    'tests/models/hf_tokenizer.test.ts',
    'tests/models/llama2c.test.ts',
    'tests/models/llama2c_exact.test.ts',
    'tests/models/llama2c_tokenizer.test.ts',
    'tests/models/reliability.test.ts',
    'tests/models/stop_tokens.test.ts',
    'tests/models/tokenizer_speed.test.ts',
    'tests/tools/heads_openings.test.ts',
    'tests/training/draft_vocab.test.ts',
    'tests/training/train_heads.test.ts',
    'tests/training/train_heads_corpus.test.ts',
    'tests/training/train_heads_tau.test.ts',
  ],
} as const;

/** The tiers, in the order a file is assigned to them; unit is every other test file. */
export const TIERS = ['browser', 'package', 'models', 'unit'] as const;
export type Tier = (typeof TIERS)[number];

/** Every test file the suite runs (vitest.config.ts `include`). */
export const ALL_TESTS = 'tests/**/*.test.ts';

/** An entry of {@link TIER_FILES} as a vitest glob. */
export const globOf = (entry: string): string => (entry.endsWith('/') ? `${entry}**/*.test.ts` : entry);

/** The tier of a test file (a path from the repository root, with `/`). */
export function tierOf(file: string): Tier {
  for (const tier of ['browser', 'package', 'models'] as const) {
    if (TIER_FILES[tier].some((entry: string) => (entry.endsWith('/') ? file.startsWith(entry) : file === entry))) return tier;
  }
  return 'unit';
}
