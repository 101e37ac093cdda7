/**
 * Speculative decoding with multi-token heads and pluggable drafters. One loop, four named steps
 * per model forward, whatever drafts (a chain is a path-shaped tree):
 *
 *   propose  — the block to feed: the committed token(s) not yet in the cache, then the first
 *              non-empty proposal of the drafters (the heads' drafts made at the last tip, a
 *              prompt-lookup match, a user's drafter), cut to what the context holds
 *   verify   — one forward over the block; offset 0 at the root's and every node's row; the
 *              acceptance rule on the device finds the tip and the token after it; the heads
 *              draft at the tip only; one readback (step.ts)
 *   accept   — the accepted path's tokens, then the verifier's own token
 *   advance  — keep the cache rows of what was committed, drop the rest; learn (sizes, acceptance)
 *
 * With `acceptance: 'greedy'` the output equals greedy decoding token for token, with
 * `'sampling'` it is distributed exactly as ordinary sampling, whatever the drafts were (Stern et
 * al. 2018; Leviathan et al. 2023; Miao et al. 2024). `draftLength: 'auto'` (the default) and
 * `tree: 'auto'` size each step from costs and acceptance measured while decoding (tuner.ts), 0
 * included: a step of 0 drafts is an ordinary decoding step.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkProposal, type Drafter, type DraftTree, draftTree, isHeadsDrafter, NO_DRAFT, withoutRepeatedSiblings } from './drafters.js';
import { checkedModel } from './checked.js';
import type { MultiTokenModel } from './model.js';
import { resolveSpeculativeOptions, type ResolvedSpeculativeOptions, type SpeculativeOptions, type TokenIds } from './options.js';
import type { DecodeResult, TokenChunk } from './result.js';
import { decodeSession, drain, type Forward, type Loop } from './session.js';
import { isGreedy, runStep, type StepBlock, type StepResult } from './step.js';
import type { HeadDraft, TipPlan } from './tip_draft.js';
import { growTree, TREE_LIMITS, type TreeSpec } from './tree.js';
import { StepTuner } from './tuner.js';
import { now } from './event_loop.js';

/** A proposal ready to verify, and where it came from. */
interface Proposal extends StepBlock {
  /** The drafter whose proposal this is (null: none proposed anything). */
  drafter: Drafter | null;
  /** Best-first path log-probabilities of the nodes (the heads' dynamic trees), for `tree: 'auto'`. */
  scores: number[] | null;
}

/** What one step hands to the next. */
interface Carry {
  /** Committed tokens not yet in the cache. */
  pending: number[];
  /** The heads' drafts at the last tip (null: none made). */
  draft: HeadDraft | null;
  /** A sampled chain's distributions (kept; this carry owns them). */
  q: tf.Tensor2D | null;
}

/** How the heads draft, fixed for a decode: a chain, or a tree spec. */
type HeadsMode = { kind: 'chain' } | { kind: 'tree'; spec: TreeSpec };

/** One decode's drafting: the drafters, the heads' mode, the sizes and their tuner. */
class Drafting {
  readonly heads: boolean;
  readonly mode: HeadsMode;
  /** Deepest draft (chain length or tree depth). */
  readonly depth: number;
  /** Deepest the heads draft (offsets 1…k−1 exist). */
  private readonly headDepth: number;
  readonly tuner: StepTuner | null;
  /** The size the next step may use: chain depth or tree nodes (fixed, or chosen by the tuner a step ahead). */
  size = 0;

  /** `owner`: the model as the caller passed it (what the tuner's memory is kept for); `model`: its checked view. */
  constructor(readonly model: MultiTokenModel, readonly o: ResolvedSpeculativeOptions, owner: MultiTokenModel) {
    this.heads = o.drafters.some(isHeadsDrafter);
    this.mode = o.tree === null ? { kind: 'chain' } : { kind: 'tree', spec: o.tree };
    this.depth = o.tree === null ? o.draftLength : o.tree.depth;
    this.headDepth = Math.min(this.depth, model.numHeads - 1);
    const treeAuto = o.tree?.auto === true;
    if ((o.tree === null && o.autoLength) || treeAuto) {
      const sizes = treeAuto ? Array.from({ length: o.tree!.maxNodes + 1 }, (_, n) => n) : Array.from({ length: this.depth + 1 }, (_, d) => d);
      const key = `${treeAuto ? `tree:${o.tree!.topK}` : 'chain'}|${isGreedy(o) ? 'greedy' : o.acceptance}|${o.drafters.map((d) => d.name).join('+')}|${this.depth}`;
      this.tuner = new StepTuner(owner, key, sizes, this.depth);
    } else {
      this.tuner = null;
    }
  }

  /** The size the step after this one may use (chosen now, so this step's tip drafts just that). */
  chooseNext(): number {
    if (this.tuner === null) return this.mode.kind === 'chain' ? this.depth : this.mode.spec.maxNodes;
    const t = this.tuner;
    return t.choose(this.mode.kind === 'chain' ? (d) => t.expectedChain(d) : (n) => t.expectedTree(n));
  }

  /** What the heads draft at this step's tip for a next step of `size`. */
  plan(size: number): TipPlan {
    if (!this.heads || size === 0 || this.headDepth === 0) return { kind: 'none' };
    if (this.mode.kind === 'chain') return { kind: isGreedy(this.o) || this.o.acceptance === 'typical' ? 'argmax' : 'sample', depth: Math.min(size, this.headDepth) };
    const spec = this.mode.spec;
    if (spec.nodes === null && this.model.headTree !== undefined) return { kind: 'forest', depth: spec.depth, topK: spec.topK };
    return { kind: 'topk', depth: spec.depth, topK: spec.topK, logProbs: spec.nodes === null };
  }

  /** The tip work a steady step of `size` does (what makes a step's time a clean sample of its size). */
  tipWork(size: number): number {
    if (!this.heads || size === 0) return 0;
    return this.mode.kind === 'chain' ? Math.min(size, this.headDepth) : 1;
  }
}

/** The heads' proposal from their drafts at the last tip, at most `maxDepth` deep and `maxNodes` many. */
function headsProposal(d: Drafting, draft: HeadDraft | null, maxDepth: number, maxNodes: number): { tree: DraftTree; scores: number[] | null } {
  if (draft === null) return { tree: NO_DRAFT, scores: null };
  if ('chain' in draft) {
    const chain = draft.chain.slice(0, Math.min(maxDepth, maxNodes));
    return { tree: draftTree(chain, chain.map((_, i) => i - 1)), scores: null };
  }
  if (d.mode.kind !== 'tree') return { tree: NO_DRAFT, scores: null };
  const grown = growTree(d.mode.spec, draft, maxDepth);
  const n = Math.min(maxNodes, grown.nodes.length); // best first (static: in spec order): a prefix is a tree
  const tree = withoutRepeatedSiblings(draftTree(grown.tokens.slice(0, n), grown.nodes.slice(0, n).map((x) => x.parent)));
  return { tree, scores: grown.scores.length > 0 && tree.tokens.length === n ? grown.scores.slice(0, n) : null };
}

/** propose: the first drafter's non-empty proposal, within the context's room and this step's size. */
function propose(d: Drafting, carry: Carry, text: readonly number[]): Proposal {
  const { model, o } = d;
  const room = model.maxLength - model.length - carry.pending.length;
  const size = d.size;
  const none: Proposal = { pending: carry.pending, tree: NO_DRAFT, q: null, drafter: null, scores: null };
  if (room < 1 || size === 0) return none;
  const maxDepth = Math.min(d.depth, room, d.mode.kind === 'chain' ? size : d.depth);
  const maxNodes = d.mode.kind === 'tree' ? size : maxDepth;
  // drafters of one's own may propose trees (within the node limit) when the model can verify them
  const ownNodes = d.mode.kind === 'tree' ? size : typeof model.forwardTree === 'function' && typeof model.keepRows === 'function' ? TREE_LIMITS.maxNodes : maxDepth;
  for (const drafter of o.drafters) {
    if (isHeadsDrafter(drafter)) {
      const { tree, scores } = headsProposal(d, carry.draft, maxDepth, maxNodes);
      if (tree.tokens.length === 0) continue;
      let q: tf.Tensor2D | null = null;
      if (carry.q !== null && tree.path) q = tree.tokens.length === carry.q.shape[0] ? carry.q : (tf.slice(carry.q, [0, 0], [tree.tokens.length, -1]) as tf.Tensor2D); // [N, V] the fed drafts' q only
      return { pending: carry.pending, tree, q, drafter, scores };
    }
    const context = { tokens: text, maxDepth, maxNodes: ownNodes, vocabSize: model.vocabSize };
    const tree = checkProposal(o.fn, drafter, drafter.propose(context), context);
    if (tree.tokens.length === 0) continue;
    return { pending: carry.pending, tree, q: null, drafter, scores: null };
  }
  return none;
}

/** accept: the accepted path's tokens (a node at depth j counts as offset j), then the verifier's own token. */
function accept(d: Drafting, block: Proposal, step: StepResult): Forward {
  const { tokens, parents, depth } = block.tree;
  const deepest = depth.reduce((a, x) => Math.max(a, x), 0);
  const forward: Forward = {
    tokens: [...step.path.map((i) => tokens[i]!), step.next],
    sources: [...step.path.map((i) => depth[i]!), 0],
    drafted: deepest,
    nodes: tokens.length,
    finite: step.finite,
    ...(block.drafter !== null ? { drafter: block.drafter.name } : {}),
  };
  if (d.mode.kind === 'tree' || !block.tree.path) forward.tree = { tokens: tokens.slice(), parents: parents.slice(), accepted: step.path.slice() };
  return forward;
}

/** advance: keep the fed rows whose tokens are committed (the pending ones and the path), drop the rest. */
function advance(model: MultiTokenModel, start: number, block: Proposal, step: StepResult): void {
  if (block.tree.path) {
    model.truncate(start + block.pending.length + step.path.length);
  } else {
    const P = block.pending.length;
    model.keepRows!([...block.pending.map((_, i) => i), ...step.path.map((i) => P + i)]);
  }
}

/** The loop: propose → verify → accept → advance, one forward per step. */
function speculativeLoop(unchecked: MultiTokenModel, o: ResolvedSpeculativeOptions): Loop {
  const model = checkedModel(o.fn, unchecked);
  return async function* (random) {
    const d = new Drafting(model, o, unchecked);
    const text = o.prompt.slice(); // what the drafters continue: the prompt and every committed token
    let carry: Carry = { pending: o.prompt, draft: null, q: null };
    try {
      d.size = d.tuner === null ? d.chooseNext() : d.tuner.max; // the first step: a prompt-lookup match on the prompt may draft this much
      let first = true;
      for (;;) {
        const t0 = now();
        const block = propose(d, carry, text);
        const fed = block.tree.tokens.length;
        const next = d.chooseNext(); // the size of the step after this one: this step's tip drafts just that
        const plan = d.plan(next);
        if (block.scores !== null) d.tuner?.rememberScores(block.scores);
        const start = model.length;
        let step: StepResult;
        try {
          step = await runStep(model, block, plan, o, random);
        } finally {
          if (block.q !== null && block.q !== carry.q) block.q.dispose();
          carry.q?.dispose(); // verified or not, the carried drafts' q is used up
          carry.q = null;
        }
        carry = { pending: [step.next], draft: step.draft, q: step.q };
        const ms = now() - t0;
        const forward = accept(d, block, step);
        advance(model, start, block, step);
        text.push(...forward.tokens);
        if (!first && d.tuner !== null) {
          if (d.tipWork(fed) === d.tipWork(next) && (d.mode.kind === 'tree' || fed <= d.depth)) d.tuner.record(fed, ms);
          if (d.mode.kind === 'chain') {
            if (fed > 0) d.tuner.observeChain(fed, step.path.length);
          } else if (block.scores !== null && fed > 0) {
            d.tuner.observeTree(block.scores.reduce((a, s) => a + Math.exp(s), 0), step.path.length);
          }
        }
        if (block.drafter !== null && !isHeadsDrafter(block.drafter)) block.drafter.observe?.({ proposed: fed, accepted: step.path.length });
        d.size = next;
        first = false;
        yield forward;
      }
    } finally {
      carry.q?.dispose();
    }
  };
}

/** Runs {@link speculativeLoop} in a decode session. */
function speculative(model: MultiTokenModel, o: ResolvedSpeculativeOptions, stream: boolean): AsyncGenerator<TokenChunk, DecodeResult, void> {
  return decodeSession(model, o, speculativeLoop(model, o), stream);
}

/**
 * The streaming form of {@link speculativeDecode}: yields each step's committed tokens (finish
 * it or `return()` it; see `greedyStream`).
 */
export async function* speculativeStream(
  model: MultiTokenModel,
  prompt: TokenIds,
  options: SpeculativeOptions = {},
): AsyncGenerator<TokenChunk, DecodeResult, void> {
  return yield* speculative(model, resolveSpeculativeOptions('speculativeStream', model, prompt, options), true);
}

/**
 * Speculative decoding: each forward verifies the previous step's drafts with offset 0 and drafts
 * the next ones, committing one token plus every draft it accepts. Drafts come from the model's
 * heads (offsets 1…k−1, computed at the accepted tip only; a chain, or a tree with `tree`), from
 * prompt lookup, or from your own {@link Drafter} (`drafter`). With `acceptance: 'greedy'`
 * (default) the output equals `greedyDecode`'s token for token; with `'sampling'` it is
 * distributed exactly as ordinary sampling; `'typical'` trades exactness for longer accepted runs.
 *
 * `draftLength` defaults to `'auto'`: each step's length is the one with the most tokens per
 * millisecond given the step costs measured while decoding and the acceptance seen so far — 0
 * (an ordinary step) when speculation does not pay on this backend. Pass a number to fix it.
 *
 * Resets the model's cache first and frees it at the end. Never sets the tfjs backend.
 *
 * @example
 * ```ts
 * const { tokens, stats } = await speculativeDecode(model, prompt, { maxNewTokens: 64 });
 * console.log(`τ = ${stats.meanAcceptedLength.toFixed(2)} tokens per forward`);
 * ```
 */
export async function speculativeDecode(
  model: MultiTokenModel,
  prompt: TokenIds,
  options: SpeculativeOptions = {},
): Promise<DecodeResult> {
  return drain(speculative(model, resolveSpeculativeOptions('speculativeDecode', model, prompt, options), false));
}
