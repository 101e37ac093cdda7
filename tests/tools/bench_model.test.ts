/**
 * tools/bench_model.ts's prompts for draft heads: the held-out openings of the heads' corpus
 * first, then hand-written openings, none of which a training opening of the corpus starts (the
 * corpus never continued them), no duplicates.
 */
import { describe, expect, it } from 'vitest';
import { heldOutStoryPrompts } from '../../tools/bench_model.js';
import { HELD_OUT_OPENINGS, STORY_OPENINGS } from '../../tools/heads/corpus.js';

describe('heldOutStoryPrompts', () => {
  it('starts with the corpus held-out openings and adds only openings no training opening starts', () => {
    const prompts = heldOutStoryPrompts();
    const heldOut = STORY_OPENINGS.slice(STORY_OPENINGS.length - HELD_OUT_OPENINGS);
    const training = STORY_OPENINGS.slice(0, STORY_OPENINGS.length - HELD_OUT_OPENINGS);
    expect(prompts.slice(0, HELD_OUT_OPENINGS)).toEqual(heldOut);
    expect(prompts.length).toBeGreaterThan(HELD_OUT_OPENINGS);
    expect(new Set(prompts).size).toBe(prompts.length);
    for (const p of prompts) expect(training.filter((o) => p.startsWith(o))).toEqual([]);
  });
});
