import { defineConfig } from 'tsup';

// Two entry points: the core library and the reference model (a separate subpath so that
// users who bring their own model never bundle it). ESM + CJS + .d.ts/.d.cts, no bundled tfjs.
export default defineConfig({
  entry: { index: 'src/index.ts', models: 'src/models/index.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  splitting: true,
  treeshake: true,
  target: 'es2020',
  external: [/^@tensorflow\//],
});
