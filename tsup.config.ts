import { defineConfig } from 'tsup';

// Two library entry points: the core library and the reference model (a separate subpath so that
// users who bring their own model never bundle it). ESM + CJS + .d.ts/.d.cts, no bundled tfjs.
// And the `tfjs-mtp` command (package.json "bin"): one ESM file for Node, tfjs and its backends
// imported from the app's node_modules.
export default defineConfig([
  {
    entry: { index: 'src/index.ts', models: 'src/models/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: ['!cli.js', '!cli.js.map'], // everything but the command, which the second build writes (the two run in parallel)
    splitting: true,
    treeshake: true,
    target: 'es2020',
    external: [/^@tensorflow\//],
  },
  {
    entry: { cli: 'src/cli/main.ts' },
    format: ['esm'],
    platform: 'node',
    target: 'node18',
    sourcemap: true,
    clean: false,
    splitting: false,
    treeshake: true,
    banner: { js: '#!/usr/bin/env node' },
    external: [/^@tensorflow\//],
  },
]);
