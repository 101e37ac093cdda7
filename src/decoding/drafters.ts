/**
 * Drafters: where a speculative step's candidate tokens come from. The loop (speculative.ts) asks
 * a drafter for a proposal before each step — a chain of tokens, or a tree of them under the last
 * committed token — verifies it with offset 0 in one forward and keeps the longest accepted path;
 * the drafter never sees tensors and never changes what is decoded, only how many tokens a
 * forward commits. This is Hugging Face's `CandidateGenerator` and llama.cpp's speculative
 * "drafters" in one small interface:
 *
 * - {@link headsDrafter}: the model's own draft heads (offsets 1…k−1), computed on the device at
 *   the accepted tip of the previous step (a chain, or a tree with `options.tree`);
 * - {@link promptLookupDrafter}: prompt lookup (Saxena 2023; Hugging Face's
 *   `prompt_lookup_num_tokens`): the tokens that followed the latest earlier occurrence of the
 *   text's last n-gram, free of any model work;
 * - a list of drafters: the first one that proposes anything wins the step — `[promptLookupDrafter(),
 *   headsDrafter()]` is llama.cpp's "n-gram where it matches, the draft model otherwise";
 * - any object with a `name` and a `propose(context)` method: a user's own drafter.
 *
 * Proposals are plain token ids; with speculative sampling each is verified as a point mass
 * (accepted with probability p(x), then the residual excludes it), which keeps the output
 * distributed exactly as ordinary sampling whatever the drafter proposes.
 */
import { checkInteger, fail, show } from '../internal/errors.js';
import { checkKeys } from '../internal/keys.js';

/** What a drafter sees when asked for a proposal (plain data; valid during the call only). @inline */
export interface DraftContext {
  /** The prompt followed by every token committed so far; the proposal continues it. */
  readonly tokens: readonly number[];
  /** Most tokens deep a proposal may go this step (a chain's length, a tree's depth), ≥ 1. */
  readonly maxDepth: number;
  /**
   * Most tokens a proposal may hold this step: `options.tree`'s node budget; without it, when the
   * model can verify trees (`forwardTree` and `keepRows`), the largest tree (256 nodes); else
   * `maxDepth` (chains only).
   */
  readonly maxNodes: number;
  /** Size V of the model's vocabulary: every proposed token is an integer in [0, V). */
  readonly vocabSize: number;
}

/**
 * A tree of draft tokens under the last committed token: token i hangs under token `parents[i]`
 * (an earlier index) or, for −1, directly under the committed text. A chain `[a, b, c]` is the
 * tree `{ tokens: [a, b, c], parents: [-1, 0, 1] }`.
 * @inline
 */
export interface DraftTreeProposal {
  /** Per node, its token id. */
  readonly tokens: readonly number[];
  /** Per node, its parent: an earlier index into `tokens`, or −1 under the committed text. */
  readonly parents: readonly number[];
}

/** A proposal: a chain of token ids, a tree, or nothing (`null`, `undefined` or empty: no drafts this step). @inline */
export type DraftProposal = readonly number[] | DraftTreeProposal | null | undefined;

/** What became of a drafter's proposal, told to it after the step that verified it. @inline */
export interface DraftOutcome {
  /** Tokens it proposed (a tree's nodes). */
  readonly proposed: number;
  /** Of those, how many verification kept (the accepted path's length). */
  readonly accepted: number;
}

/**
 * A source of draft tokens for `speculativeDecode`'s `drafter` option. `propose` runs on the JS
 * side before every step (synchronous; keep it fast — it is on the decode's critical path);
 * `observe`, when present, hears how the proposal fared.
 *
 * @example
 * ```ts
 * // Drafts the token that followed the last token the previous time it appeared.
 * const repeatLast: Drafter = {
 *   name: 'repeat-last',
 *   propose({ tokens }) {
 *     const last = tokens[tokens.length - 1];
 *     const at = tokens.lastIndexOf(last, tokens.length - 2);
 *     return at >= 0 ? [tokens[at + 1]!] : null;
 *   },
 * };
 * ```
 */
export interface Drafter {
  /** The name the decode's statistics report this drafter under (`stats.drafters`). */
  readonly name: string;
  /** The next step's candidates, at most `context.maxDepth` deep and `context.maxNodes` many. */
  propose(context: DraftContext): DraftProposal;
  /** Optional: called after each step that verified this drafter's proposal. */
  observe?(outcome: DraftOutcome): void;
}

/** Marks the one built-in drafter whose proposals the loop computes on the device. */
const HEADS = Symbol('tfjs-mtp.headsDrafter');

/**
 * The model's own draft heads (offsets 1…k−1), the default drafter: drafts come from the
 * accepted tip's state, computed on the device inside the previous step (a chain, or a tree with
 * `options.tree`). Its `propose` only works inside `speculativeDecode` (elsewhere it returns
 * null): the drafts are made by the step, not by the call.
 */
export function headsDrafter(): Drafter {
  return { name: 'heads', propose: () => null, [HEADS]: true } as Drafter;
}

/** Whether `d` is a {@link headsDrafter}. @internal */
export function isHeadsDrafter(d: Drafter): boolean {
  return (d as unknown as Record<symbol, unknown>)[HEADS] === true;
}

/** Options of {@link promptLookupDrafter}. @inline */
export interface PromptLookupOptions {
  /** Longest n-gram matched, tried first (then shorter ones down to `minNgram`), an integer in [1, 64]. Default: {@link DECODE_DEFAULTS}.promptLookup.ngram. */
  ngram?: number;
  /** Shortest n-gram matched, an integer in [1, ngram]. Default: {@link DECODE_DEFAULTS}.promptLookup.minNgram. */
  minNgram?: number;
}

/** Defaults of {@link promptLookupDrafter}, each with its reason (public as `DECODE_DEFAULTS.promptLookup`). @internal */
export const PROMPT_LOOKUP_DEFAULTS = Object.freeze({
  /** A 3-gram match copies text that repeats for real (names, phrases, code) and rarely fires by chance. */
  ngram: 3,
  /** Down to a single token: on repetitive text a 1-gram still predicts well, and a wrong draft costs only its row. */
  minNgram: 1,
});

/** Bound on `ngram` (a longer match buys nothing a 64-gram does not). */
const MAX_NGRAM = 64;

/**
 * The tokens after the most recent earlier occurrence of `text`'s last n tokens, n from `ngram`
 * down to `minNgram`, at most `maxLength` of them; empty when no such n-gram recurs.
 */
export function lookupDraft(text: readonly number[], ngram: number, maxLength: number, minNgram = 1): number[] {
  for (let n = Math.min(ngram, text.length - 1); n >= minNgram; n--) {
    const tail = text.length - n;
    // latest match first: the most recent context is the likeliest to repeat
    for (let start = tail - 1; start >= 0; start--) {
      let same = true;
      for (let i = 0; i < n && same; i++) same = text[start + i] === text[tail + i];
      if (same) return text.slice(start + n, Math.min(start + n + maxLength, text.length)) as number[];
    }
  }
  return [];
}

/**
 * Prompt lookup: drafts the tokens that followed the latest earlier occurrence of the text's last
 * n-gram (in the prompt or the output so far), longest n first. No model work at all: on text
 * that repeats itself (code edits, summaries, chat with quoted context) it drafts long runs for
 * free; elsewhere it proposes nothing and the step is an ordinary greedy one.
 */
export function promptLookupDrafter(options: PromptLookupOptions = {}): Drafter {
  const fn = 'promptLookupDrafter';
  if (options === null || typeof options !== 'object') fail(TypeError, fn, 'options', 'must be an object', options);
  checkKeys(fn, 'options', options, ['ngram', 'minNgram']);
  const ngram = checkInteger(fn, 'options.ngram', options.ngram ?? PROMPT_LOOKUP_DEFAULTS.ngram, 1, MAX_NGRAM);
  const minNgram = checkInteger(fn, 'options.minNgram', options.minNgram ?? Math.min(PROMPT_LOOKUP_DEFAULTS.minNgram, ngram), 1, ngram);
  return {
    name: 'promptLookup',
    propose: ({ tokens, maxDepth }) => lookupDraft(tokens, ngram, maxDepth, minNgram),
  };
}

/** A checked proposal, ready to feed: parents before children, siblings distinct. @internal */
export interface DraftTree {
  /** Per node, its token. */
  tokens: number[];
  /** Per node, its parent node (an earlier index), or −1 under the committed text. */
  parents: number[];
  /** Per node, its depth (1 = a child of the committed text). */
  depth: number[];
  /** Whether the nodes form one chain (node i under node i − 1): fed with `forward`, verified along a path. */
  path: boolean;
}

/** The empty proposal. @internal */
export const NO_DRAFT: DraftTree = Object.freeze({ tokens: [], parents: [], depth: [], path: true }) as DraftTree;

/** A tree from parallel `tokens`/`parents` lists already known to be valid, with its depths. @internal */
export function draftTree(tokens: number[], parents: number[]): DraftTree {
  const depth: number[] = [];
  let path = true;
  parents.forEach((p, i) => {
    depth.push(p < 0 ? 1 : depth[p]! + 1);
    if (p !== i - 1) path = false;
  });
  return { tokens, parents, depth, path };
}

/**
 * Drops every later sibling that repeats an earlier sibling's token, with its subtree: a repeated
 * candidate can never be accepted (greedy takes the first match; sampling gives it residual
 * probability 0), so it would only cost a row.
 */
export function withoutRepeatedSiblings(tree: DraftTree): DraftTree {
  const seen = new Map<number, Set<number>>(); // parent → tokens of its kept children
  const renumber = new Map<number, number>();
  const tokens: number[] = [];
  const parents: number[] = [];
  tree.tokens.forEach((t, i) => {
    const p = tree.parents[i]!;
    if (p >= 0 && !renumber.has(p)) return; // under a dropped node
    const siblings = seen.get(p) ?? new Set<number>();
    if (siblings.has(t)) return;
    siblings.add(t);
    seen.set(p, siblings);
    renumber.set(i, tokens.length);
    tokens.push(t);
    parents.push(p < 0 ? -1 : renumber.get(p)!);
  });
  return tokens.length === tree.tokens.length ? tree : draftTree(tokens, parents);
}

/**
 * A drafter's proposal, checked against its context (every token an id, every parent earlier,
 * within `maxDepth` and `maxNodes`), as a {@link DraftTree} without repeated siblings. Errors name
 * the drafter and the offending entry.
 */
export function checkProposal(fn: string, drafter: Drafter, proposal: DraftProposal, context: DraftContext): DraftTree {
  if (proposal === null || proposal === undefined) return NO_DRAFT;
  const who = `drafter '${drafter.name}'`;
  let tokens: unknown;
  let parents: unknown;
  if (Array.isArray(proposal) || ArrayBuffer.isView(proposal)) {
    tokens = proposal;
  } else if (typeof proposal === 'object') {
    ({ tokens, parents } = proposal as DraftTreeProposal);
  } else {
    fail(TypeError, fn, `${who}'s proposal`, 'must be an array of token ids, { tokens, parents } or null', proposal);
  }
  if (!Array.isArray(tokens) && !ArrayBuffer.isView(tokens)) fail(TypeError, fn, `${who}'s proposal.tokens`, 'must be an array of token ids', tokens);
  const ids = tokens as ArrayLike<unknown>;
  if (ids.length > context.maxNodes) fail(RangeError, fn, `${who}'s proposal`, `must hold at most maxNodes = ${context.maxNodes} tokens`, `${ids.length} tokens`);
  const chain = parents === undefined;
  if (!chain && ((!Array.isArray(parents) && !ArrayBuffer.isView(parents)) || (parents as ArrayLike<unknown>).length !== ids.length)) {
    fail(TypeError, fn, `${who}'s proposal.parents`, `must be an array of ${ids.length} parent indices (one per token)`, parents);
  }
  const outTokens: number[] = [];
  const outParents: number[] = [];
  const depth: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i];
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t >= context.vocabSize) {
      fail(RangeError, fn, `${who}'s proposal token ${i}`, `must be a token id, an integer in [0, ${context.vocabSize})`, t);
    }
    const p = chain ? i - 1 : (parents as ArrayLike<unknown>)[i];
    if (typeof p !== 'number' || !Number.isInteger(p) || p < -1 || p >= i) {
      fail(RangeError, fn, `${who}'s proposal.parents[${i}]`, `must be an integer in [-1, ${i - 1}] (an earlier token, or -1 under the committed text)`, p);
    }
    const d = p < 0 ? 1 : depth[p]! + 1;
    if (d > context.maxDepth) {
      throw new RangeError(`${fn}: ${who}'s proposal must be at most maxDepth = ${context.maxDepth} deep, but token ${i} is at depth ${d}.`);
    }
    outTokens.push(t);
    outParents.push(p);
    depth.push(d);
  }
  return withoutRepeatedSiblings(draftTree(outTokens, outParents));
}

/** Checks `options.drafter`: a drafter or a non-empty list of them (each a `{ name, propose }` object). */
export function resolveDrafters(fn: string, drafter: unknown): Drafter[] {
  const list = Array.isArray(drafter) ? drafter : [drafter];
  if (list.length < 1 || list.length > 16) fail(RangeError, fn, 'options.drafter', 'must be a drafter or a list of 1 to 16 drafters', drafter);
  const names = new Set<string>();
  list.forEach((d: unknown, i) => {
    const arg = Array.isArray(drafter) ? `options.drafter[${i}]` : 'options.drafter';
    const o = d as Partial<Drafter> | null;
    if (o === null || typeof o !== 'object') fail(TypeError, fn, arg, 'must be a drafter: an object with a name and a propose(context) method', d);
    if (typeof o.name !== 'string' || o.name.length === 0) fail(TypeError, fn, `${arg}.name`, 'must be a non-empty string', o.name);
    if (typeof o.propose !== 'function') fail(TypeError, fn, `${arg}.propose`, 'must be a function (context) => proposal', o.propose);
    if (o.observe !== undefined && typeof o.observe !== 'function') fail(TypeError, fn, `${arg}.observe`, 'must be a function when given', o.observe);
    if (names.has(o.name)) throw new RangeError(`${fn}: ${arg}.name must differ from the other drafters' names (statistics are kept per name), but ${show(o.name)} repeats.`);
    names.add(o.name);
  });
  return list as Drafter[];
}
