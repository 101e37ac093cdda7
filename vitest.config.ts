import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    environment: 'node',
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // tfjs keeps one global engine per process: isolate files in forks, run them one at a time
    // per worker so that tf.memory() assertions are not disturbed by other files.
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
  },
});
