/**
 * The corpus openings `npm run train:heads` gives `trainDraftHeads` (tools/heads): llama2.c story
 * models get the training story openings and vocabulary words (BOS first), never a held-out one;
 * a tfjs-mtp checkpoint gets seeded byte windows of its training text starting at line starts; a
 * Hugging Face model gets short generic texts through its tokenizer, the held-out ones never.
 */
import { describe, expect, it } from 'vitest';
import { Llama2cTokenizer } from '../../src/models/llama2c_tokenizer.js';
import { textOpenings } from '../../tools/heads/base.js';
import { heldOutPrompts } from '../../tools/heads/measure.js';
import { GENERIC_OPENINGS, genericOpenings, HELD_OUT_GENERIC, heldOutGenericPrompts, storyOpenings, vocabularyOpenings } from '../../tools/heads/openings.js';
import { byteTokenizer } from '../../src/models/tokenizer.js';
import { readStories, storiesAvailable } from '../helpers/stories.js';

describe.skipIf(!storiesAvailable('tools/heads_openings.test.ts'))('story openings (tools/heads/openings.ts)', () => {
  it('vocabulary openings are BOS + one word piece with a leading space; story openings leave the held-out ones out', () => {
    const tokenizer = Llama2cTokenizer.fromBytes(readStories('tokenizer'), 512);
    const words = vocabularyOpenings(tokenizer);
    expect(words.length).toBeGreaterThan(20);
    for (const [bos, id] of words) {
      expect(bos).toBe(tokenizer.bosId);
      expect(tokenizer.decode([id!])).toMatch(/^ [A-Za-z]{3,}$/);
    }
    const openings = storyOpenings(tokenizer).map((ids) => ids.join());
    for (const prompt of heldOutPrompts()) expect(openings).not.toContain(tokenizer.encode(prompt).join());
    expect(openings).toContain(tokenizer.encode('Once upon a time').join());
  });
});

describe('byte-level openings (tools/heads/base.ts)', () => {
  it('are seeded windows of 16…longest bytes starting at line starts', () => {
    const text = new TextEncoder().encode(Array.from({ length: 40 }, (_, i) => `interface Line${i} { readonly value: number; }`).join('\n'));
    const a = textOpenings(text, 50, 30, 7);
    expect(textOpenings(text, 50, 30, 7)).toEqual(a);
    expect(textOpenings(text, 50, 30, 8)).not.toEqual(a);
    const decoded = a.map((o) => new TextDecoder().decode(Uint8Array.from(o)));
    for (const [i, o] of a.entries()) {
      expect(o.length).toBeGreaterThanOrEqual(16);
      expect(o.length).toBeLessThanOrEqual(30);
      expect(decoded[i]).toMatch(/^interface Line\d+/);
    }
  });
});

describe('generic openings for a Hugging Face model (tools/heads/openings.ts)', () => {
  it('the training ones are encoded as prompts; none is a prefix of a held-out prompt', () => {
    const held = heldOutGenericPrompts();
    expect(held).toEqual(GENERIC_OPENINGS.slice(-HELD_OUT_GENERIC));
    const training = GENERIC_OPENINGS.slice(0, -HELD_OUT_GENERIC);
    for (const t of training) for (const h of held) expect(h.startsWith(t), `${JSON.stringify(t)} opens ${JSON.stringify(h)}`).toBe(false);
    expect(genericOpenings(byteTokenizer)).toEqual(training.map((t) => byteTokenizer.encode(t)));
  });
});
