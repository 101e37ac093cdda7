/**
 * τ of trained draft heads on held-out prompts: `speculativeDecode` (greedy acceptance, a chain
 * of all k − 1 drafts every step — not `draftLength: 'auto'`, whose wall-clock tuner may stop
 * drafting) against `greedyDecode` on the same `CachedTransformer`, checking the outputs are identical.
 * τ = tokens committed per forward (the decoders' `meanAcceptedLength`), summed over prompts.
 */
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { greedyDecode, speculativeDecode } from '../../src/decoding/index.js';
import type { DynamicTree } from '../../src/decoding/tree.js';
import { CachedTransformer } from '../../src/models/cached.js';
import type { Llama2cTokenizer } from '../../src/models/llama2c_tokenizer.js';
import { HELD_OUT_OPENINGS, STORY_OPENINGS } from './openings.js';

/** What {@link measureTau} finds. */
export interface TauReport {
  /** τ over all prompts: committed tokens / forwards. */
  tau: number;
  /** Per offset 1…k−1: accepted / drafted. */
  acceptancePerOffset: number[];
  /** Per prompt: its τ. */
  perPrompt: Array<{ prompt: string; tau: number }>;
  /** Whether every speculative output equals the greedy one. */
  identical: boolean;
  /** Tokens generated per prompt. */
  maxNewTokens: number;
}

/** The held-out story prompts: the story openings never used to build the corpus. */
export function heldOutPrompts(): readonly string[] {
  return STORY_OPENINGS.slice(STORY_OPENINGS.length - HELD_OUT_OPENINGS);
}

/** Decodes every prompt (`label` and token `ids`) greedily and speculatively (greedy acceptance) and compares. */
export async function measureTauOn(model: LayersModel, prompts: ReadonlyArray<{ label: string; ids: number[] }>, maxNewTokens: number, tree?: DynamicTree): Promise<TauReport> {
  const cached = new CachedTransformer(model);
  let tokens = 0;
  let forwards = 0;
  let identical = true;
  const drafted: number[] = [];
  const accepted: number[] = [];
  const perPrompt: TauReport['perPrompt'] = [];
  try {
    for (const { label, ids } of prompts) {
      const greedy = await greedyDecode(cached, ids, { maxNewTokens });
      // every head drafts every step: τ measures the heads, not the tuner's wall-clock choice; with
      // `tree`, a dynamic tree of that budget (grown node by node with sequential modules)
      const fast = await speculativeDecode(cached, ids, { maxNewTokens, acceptance: 'greedy', draftLength: cached.numHeads - 1, ...(tree ? { tree } : {}) });
      identical &&= fast.tokens.length === greedy.tokens.length && fast.tokens.every((t, i) => t === greedy.tokens[i]);
      tokens += fast.stats.tokens;
      forwards += fast.stats.forwards;
      fast.stats.draftedPerOffset.forEach((n, j) => (drafted[j] = (drafted[j] ?? 0) + n));
      fast.stats.acceptedPerOffset.forEach((n, j) => (accepted[j] = (accepted[j] ?? 0) + n));
      perPrompt.push({ prompt: label, tau: fast.stats.meanAcceptedLength });
    }
  } finally {
    cached.dispose();
  }
  return { tau: tokens / forwards, acceptancePerOffset: drafted.map((n, j) => (n === 0 ? 0 : accepted[j]! / n)), perPrompt, identical, maxNewTokens };
}

/** {@link measureTauOn} the held-out story prompts of a llama2.c story model. */
export async function measureTau(model: LayersModel, tokenizer: Llama2cTokenizer, maxNewTokens = 200): Promise<TauReport> {
  return measureTauOn(model, heldOutPrompts().map((label) => ({ label, ids: tokenizer.encode(label) })), maxNewTokens);
}
