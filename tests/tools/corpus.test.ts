/**
 * tools/corpus.ts: the one reader of TypeScript's lib files drops exactly the license header,
 * the held-out prompts start at a declaration or doc comment, and seeded windows repeat.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { uniformStream } from '../../src/decoding/random.js';
import { HELD_OUT_FILES, heldOutPrompts, readLibFile, sampleWindows, strideWindows, typescriptLibDir } from '../../tools/corpus.js';

describe('readLibFile', () => {
  it.each(['lib.es5.d.ts', 'lib.es2015.collection.d.ts'])('%s: the file minus its leading license comment', (name) => {
    const raw = readFileSync(join(typescriptLibDir(), name), 'utf8');
    const text = readLibFile(name);
    expect(raw.startsWith('/*!')).toBe(true);
    expect(raw.endsWith(text)).toBe(true);
    expect(text.startsWith('/// <reference')).toBe(true);
    expect(text).not.toContain('Apache License');
  });
});

describe('heldOutPrompts', () => {
  it('one prompt of `length` bytes per held-out file, in order, from a declaration or doc comment on', () => {
    const prompts = heldOutPrompts(3, 48);
    expect(prompts.map((p) => p.file)).toEqual(HELD_OUT_FILES.slice(0, 3));
    for (const p of prompts) {
      expect(p.bytes).toHaveLength(48);
      expect(new TextDecoder().decode(Uint8Array.from(p.bytes))).toBe(p.text);
      expect(readLibFile(p.file)).toContain(p.text);
      expect(p.text).toMatch(/^\s*(\/\*\*|interface |declare |readonly |\w+\()/);
    }
  });
});

describe('windows', () => {
  const data = Uint8Array.from({ length: 1000 }, (_, i) => i % 251);

  it('sampleWindows: contiguous slices of the data, the same for the same seed', () => {
    const a = sampleWindows(data, 4, 16, uniformStream(7));
    expect(a).toEqual(sampleWindows(data, 4, 16, uniformStream(7)));
    expect(a).not.toEqual(sampleWindows(data, 4, 16, uniformStream(8)));
    for (let i = 0; i < 4; i++) {
      const w = a.subarray(i * 16, (i + 1) * 16);
      for (let j = 1; j < 16; j++) expect(w[j]).toBe((w[j - 1]! + 1) % 251);
    }
  });

  it('strideWindows: evenly spaced, the first at 0 and the last at the end', () => {
    const w = strideWindows(data, 3, 10);
    expect(Array.from(w.subarray(0, 10))).toEqual(Array.from(data.subarray(0, 10)));
    expect(Array.from(w.subarray(20, 30))).toEqual(Array.from(data.subarray(990, 1000)));
  });
});
