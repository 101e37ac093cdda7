/**
 * The public surface, as a user of the built package meets it (`npm test` builds dist/ first):
 * every export of `tfjs-mtp` and `tfjs-mtp/models`, values and types, read from the published
 * typings with the TypeScript compiler and from the modules themselves. Printed, counted and
 * bounded (a name is public only when a user needs it; the project's tools import the rest from
 * src/), each documented, none marked `@internal`, and the typings compile on their own.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../tools/browser/bundle.js';

/** Most exports the two entries may have together (issue #22: each one a user needs). */
const MAX_EXPORTS = 70;

const ENTRIES = { 'tfjs-mtp': 'index', 'tfjs-mtp/models': 'models' } as const;
type Entry = keyof typeof ENTRIES;

/** The exports of one built entry, from its ESM typings: name → whether it has a doc comment. */
function typedExports(program: ts.Program, entry: Entry): Map<string, boolean> {
  const checker = program.getTypeChecker();
  const file = program.getSourceFile(join(ROOT, 'dist', `${ENTRIES[entry]}.d.ts`))!;
  const exports = new Map<string, boolean>();
  for (const symbol of checker.getExportsOfModule(checker.getSymbolAtLocation(file)!)) {
    const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
    const documented = ts.displayPartsToString(target.getDocumentationComment(checker)).trim() !== '';
    exports.set(symbol.getName(), documented);
  }
  return exports;
}

let program: ts.Program;

beforeAll(() => {
  if (!existsSync(join(ROOT, 'dist/index.d.ts'))) {
    throw new Error('tests/package: dist/index.d.ts is missing; run `npm run build` first (`npm test` does).');
  }
  const files = Object.values(ENTRIES).map((e) => join(ROOT, 'dist', `${e}.d.ts`));
  program = ts.createProgram(files, { module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler, target: ts.ScriptTarget.ES2022, strict: true, noEmit: true, types: [] });
});

describe('the public surface', () => {
  it(`has at most ${MAX_EXPORTS} exports over both entries, every one documented`, () => {
    let total = 0;
    for (const entry of Object.keys(ENTRIES) as Entry[]) {
      const exports = typedExports(program, entry);
      total += exports.size;
      console.log(`${entry}: ${exports.size} exports\n  ${[...exports.keys()].sort((a, b) => a.localeCompare(b)).join('\n  ')}`);
      expect([...exports].filter(([, documented]) => !documented).map(([name]) => `${entry}: ${name}`)).toEqual([]);
    }
    console.log(`total: ${total} exports (at most ${MAX_EXPORTS})`);
    expect(total).toBeLessThanOrEqual(MAX_EXPORTS);
  });

  it('exports at run time exactly what the typings declare', async () => {
    for (const entry of Object.keys(ENTRIES) as Entry[]) {
      const runtime = Object.keys(await import(pathToFileURL(join(ROOT, 'dist', `${ENTRIES[entry]}.js`)).href)).sort();
      const typed = typedExports(program, entry);
      const untyped = runtime.filter((name) => !typed.has(name));
      expect(untyped, `${entry}: runtime exports without a public type`).toEqual([]);
    }
  });

  it('gives each config field name one meaning: numHeads is k, the trunk has Hugging Face’s names, the heads’ width is headHiddenSize', () => {
    const checker = program.getTypeChecker();
    /** The current (not deprecated) fields of an exported interface, and its deprecated ones. */
    const fields = (entry: Entry, name: string): { current: string[]; deprecated: string[] } => {
      const file = program.getSourceFile(join(ROOT, 'dist', `${ENTRIES[entry]}.d.ts`))!;
      const exported = checker.getExportsOfModule(checker.getSymbolAtLocation(file)!).find((s) => s.getName() === name)!;
      const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      const properties = checker.getPropertiesOfType(checker.getDeclaredTypeOfSymbol(symbol));
      const isDeprecated = (p: ts.Symbol) => p.getJsDocTags(checker).some((tag) => tag.name === 'deprecated');
      return { current: properties.filter((p) => !isDeprecated(p)).map((p) => p.getName()), deprecated: properties.filter(isDeprecated).map((p) => p.getName()) };
    };
    const transformer = fields('tfjs-mtp/models', 'TransformerConfig');
    expect(transformer.current).toEqual(expect.arrayContaining(['numAttentionHeads', 'numKeyValueHeads', 'intermediateSize', 'mtpHeads', 'headHiddenSize']));
    expect(transformer.current).not.toContain('numHeads');
    expect(transformer.deprecated.sort()).toEqual(['mlpHiddenSize', 'numHeads']);
    const heads: [Entry, string][] = [['tfjs-mtp', 'MultiTokenHeadArgs'], ['tfjs-mtp', 'LightweightOffsetHeadArgs'], ['tfjs-mtp', 'SequentialMtpHeadArgs'], ['tfjs-mtp/models', 'LoadLlama2cOptions']];
    for (const [entry, name] of heads) {
      const f = fields(entry, name);
      expect(f.current, name).toContain('headHiddenSize');
      expect(f.deprecated, name).toEqual(['mlpHiddenSize']);
    }
    for (const name of ['MultiTokenHeadArgs', 'SequentialMtpHeadArgs']) expect(fields('tfjs-mtp', name).current).toContain('numHeads'); // k
    // No current field anywhere is still called mlpHiddenSize.
    for (const entry of Object.keys(ENTRIES) as Entry[]) {
      for (const name of typedExports(program, entry).keys()) {
        const exported = checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(join(ROOT, 'dist', `${ENTRIES[entry]}.d.ts`))!)!).find((s) => s.getName() === name)!;
        const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
        if (!(symbol.flags & ts.SymbolFlags.Interface)) continue;
        expect(fields(entry, name).current, `${entry}: ${name}`).not.toContain('mlpHiddenSize');
      }
    }
  });

  it('keeps @internal out of the published typings', () => {
    const typings = readdirSync(join(ROOT, 'dist')).filter((f) => /\.d\.c?ts$/.test(f)).map((f) => `dist/${f}`);
    expect(typings).toEqual(expect.arrayContaining(['dist/index.d.ts', 'dist/models.d.ts', 'dist/index.d.cts', 'dist/models.d.cts']));
    for (const file of typings) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      const at = text.indexOf('@internal');
      expect(at, `${file} mentions @internal: …${text.slice(Math.max(0, at - 200), at + 40)}…`).toBe(-1);
    }
  });

  describe('the typings compile on their own (nothing stripped that a public declaration needs)', () => {
    let app: string;
    beforeAll(() => {
      app = mkdtempSync(join(tmpdir(), 'tfjs-mtp-types-'));
    });
    afterAll(() => rmSync(app, { recursive: true, force: true }));

    it('tsc --noEmit with skipLibCheck off over a file that imports both entries', async () => {
      const main = join(app, 'main.ts');
      writeFileSync(main, "import * as mtp from 'tfjs-mtp';\nimport * as models from 'tfjs-mtp/models';\nexport const names: string[] = [...Object.keys(mtp), ...Object.keys(models)];\n");
      const config = {
        compilerOptions: {
          strict: true, noEmit: true, skipLibCheck: false, module: 'ESNext', moduleResolution: 'Bundler', target: 'ES2022', lib: ['ES2022', 'DOM'], types: [],
          baseUrl: ROOT, paths: { 'tfjs-mtp': ['dist/index.d.ts'], 'tfjs-mtp/models': ['dist/models.d.ts'], '*': ['node_modules/*'] },
        },
        files: [main],
      };
      writeFileSync(join(app, 'tsconfig.json'), JSON.stringify(config));
      // what `tsc -p <app>/tsconfig.json` does, in this process: parse the project, report every diagnostic
      const project = ts.getParsedCommandLineOfConfigFile(join(app, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => expect.fail(ts.flattenDiagnosticMessageText(d.messageText, '\n')) })!;
      expect(project.errors).toEqual([]);
      const diagnostics = ts.getPreEmitDiagnostics(ts.createProgram(project.fileNames, project.options));
      const output = ts.formatDiagnostics(diagnostics, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => app, getNewLine: () => '\n' });
      // Only errors in the package's own typings count (tfjs' typings have their own lib-check issues).
      const ours = output.split('\n').filter((line) => !line.includes('node_modules') && (/(^|\/)dist\/[^/]+\.d\.c?ts\(/.test(line) || /main\.ts/.test(line)));
      expect(ours).toEqual([]);
    });
  });
});
