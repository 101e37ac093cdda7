/**
 * Self-speculative decoding with multi-token heads: one forward both verifies the previous
 * block with offset 0 and proposes the next block from offsets 1…d at the last kept position
 * (Stern et al. 2018, §3–4; Gloeckle et al. 2024, §3.2; the acceptance rules in
 * acceptance.ts). Every step is four named functions, in the order they run:
 *
 *   propose  — the block to feed: the committed token(s) not yet in the cache, then the drafts
 *              the previous forward made (offsets 1…d), as many as the context holds
 *   verify   — one forward over the block; offset 0 at each position checks the draft after it,
 *              and offsets 1…d at the last kept position draft the next block (one readback)
 *   accept   — the longest verified prefix of drafts, plus the verifier's own next token
 *   advance  — roll the rejected positions out of the cache, carry the new drafts
 *
 * With `tree`, the same four steps run on a draft tree (tree.ts builds it, tree_verify.ts
 * verifies it in one forward with tree attention, tree_acceptance.ts walks it): the proposal is
 * a tree of candidates under the last committed token, acceptance keeps the longest accepted
 * root-to-node path, and advance keeps exactly that path's positions in the cache.
 *
 * Each step costs one forward, one small device program and one readback of a few integers:
 * with greedy acceptance and a model that has `headArgmax`, verify reads back the argmax of every
 * offset at every verified row ((m + 1)·(d + 1) ids) and acceptance runs in JS; otherwise the
 * acceptance rule runs on the device and d + 3 integers come back.
 */
import * as tf from '@tensorflow/tfjs-core';
import { greedyAccept, samplingAccept, typicalAccept, type Verdict } from './acceptance.js';
import { allFinite, allTokens, argmaxRows, sampleRows, toProbabilities } from './distributions.js';
import type { MultiTokenModel } from './model.js';
import { resolveSpeculativeOptions, type ResolvedSpeculativeOptions, type SpeculativeOptions, type TokenIds } from './options.js';
import { uniforms } from './random.js';
import type { DecodeResult, TokenChunk } from './result.js';
import { decodeSession, drain, type Forward, type Loop } from './session.js';
import { growTree, type TreeDraft, type TreeSpec } from './tree.js';
import { measureTreeCosts, TREE_AUTO_DEFAULTS, type TreeCost } from './tree_auto.js';
import { type TreeBlock, type TreeModel, type TreeStep, verifyTree } from './tree_verify.js';

/** The block the next forward feeds. */
interface Proposal {
  /** Committed tokens not yet in the cache: the prompt at first, then the one token after the kept drafts. */
  pending: number[];
  /** Drafts from offsets 1…m, to be verified. */
  drafts: number[];
  /** The distributions q the drafts were sampled from, `[m, V]` (`'sampling'` only; owned, kept). */
  draftProbs: tf.Tensor2D | null;
}

/** What one forward decided (read back in one `data()` call) and proposed. */
interface Step {
  /** Leading drafts kept. */
  accepted: number;
  /** The verifier's token after them (a correction, or the bonus token). */
  next: number;
  /** The next drafts, from offsets 1…d at the last kept position. */
  drafts: number[];
  /** Their distributions `[d, V]` (`'sampling'` only; owned by the caller). */
  draftProbs: tf.Tensor2D | null;
  /** False if any logit used was NaN or ±Infinity. */
  finite: boolean;
}

/** Applies the acceptance rule (temperature 0 always means greedy). */
function judge(
  o: ResolvedSpeculativeOptions,
  target: tf.Tensor2D, // [m + 1, V] offset-0 logits
  drafts: tf.Tensor1D, // [m]
  draftProbs: tf.Tensor2D | null, // [m, V]
  u: tf.Tensor1D | null, // [m + 1 + d]
): Verdict {
  const m = drafts.shape[0];
  if (o.sampling.temperature === 0 || u === null || o.acceptance === 'greedy') return greedyAccept(target, drafts);
  if (o.acceptance === 'typical') {
    return typicalAccept(target, drafts, o.sampling, o.posteriorThreshold, o.posteriorAlpha, tf.slice(u, m, 1));
  }
  const q = draftProbs === null ? tf.zeros([0, target.shape[1]]) : tf.slice(draftProbs, [0, 0], [m, -1]);
  return samplingAccept(toProbabilities(target, o.sampling), drafts, q as tf.Tensor2D, tf.slice(u, 0, m + 1));
}

/**
 * verify (device path: sampling, typical, or a model without `headArgmax`): one forward over the
 * block, one head pass for every offset at every row, the acceptance rule, and the next drafts
 * picked from the row after the kept prefix — one device program, one readback.
 */
async function verify(
  model: MultiTokenModel,
  p: Proposal,
  o: ResolvedSpeculativeOptions,
  random: () => number,
): Promise<Step> {
  const m = p.drafts.length;
  const d = o.draftLength;
  const vocab = model.vocabSize;
  const sampled = o.sampling.temperature > 0;
  const samplesDrafts = sampled && o.acceptance === 'sampling';
  const offsets = Array.from({ length: d + 1 }, (_, j) => j); // offset 0 verifies, 1…d draft
  const states = model.forward([...p.pending, ...p.drafts]); // [n, S]
  let packed: tf.Tensor1D | undefined;
  let draftProbs = null as tf.Tensor2D | null; // set inside the tidy below
  try {
    packed = tf.tidy(() => {
      const rows = tf.slice(states, [states.shape[0] - m - 1, 0], [m + 1, -1]); // [m + 1, S] each checks the token after it
      const all = model.headLogits(rows, offsets); // [m + 1, d + 1, V] one head pass: every offset at every row
      const target = tf.reshape(tf.slice(all, [0, 0, 0], [m + 1, 1, vocab]), [m + 1, vocab]) as tf.Tensor2D; // [m + 1, V]
      const u = sampled ? tf.tensor1d(uniforms(random, m + 1 + d)) : null; // [m + 1 + d]
      const verdict = judge(o, target, tf.tensor1d(p.drafts, 'int32'), p.draftProbs, u);
      const parts: tf.Tensor1D[] = [tf.reshape(verdict.accepted, [1]), tf.reshape(verdict.next, [1])];
      const used: tf.Tensor[] = [target];
      if (d > 0) {
        const drafting = tf.slice(all, [0, 1, 0], [m + 1, d, vocab]); // [m + 1, d, V]
        const logits = tf.reshape(tf.gather(drafting, tf.reshape(verdict.accepted, [1])), [d, vocab]) as tf.Tensor2D; // [d, V] at the last kept position
        used.push(logits);
        if (samplesDrafts && u !== null) {
          draftProbs = tf.keep(toProbabilities(logits, o.sampling)); // [d, V] carried to the next step
          parts.push(sampleRows(draftProbs, tf.slice(u, m + 1, d)));
        } else {
          parts.push(argmaxRows(logits)); // greedy drafts (Medusa's top-1 candidates)
        }
      }
      parts.push(allFinite(used));
      return tf.cast(tf.concat(parts), 'int32') as tf.Tensor1D; // [3 + d]
    });
    const ids = await packed.data(); // [accepted, next, draft₁…draft_d, finite]
    return { accepted: ids[0], next: ids[1], drafts: Array.from(ids.subarray(2, 2 + d)), draftProbs, finite: ids[2 + d] === 1 };
  } catch (error) {
    draftProbs?.dispose();
    throw error;
  } finally {
    states.dispose();
    packed?.dispose();
  }
}

/**
 * verify, greedy fast path (the model has `headArgmax`): every offset 0…d at every verified row
 * in one device pass, one readback of the (m + 1)·(d + 1) ids; acceptance and the next drafts are
 * decided here, in JS, from those ids.
 */
async function verifyGreedy(model: MultiTokenModel & Required<Pick<MultiTokenModel, 'headArgmax'>>, p: Proposal, d: number): Promise<Step> {
  const m = p.drafts.length;
  const k = d + 1;
  const states = model.forward([...p.pending, ...p.drafts]); // [n, S]
  let ids: tf.Tensor | undefined;
  try {
    ids = tf.tidy(() => {
      const n = states.shape[0];
      const rows = n === m + 1 ? states : tf.slice(states, [n - m - 1, 0], [m + 1, -1]); // [m + 1, S] each checks the token after it
      return model.headArgmax(rows, k); // [m + 1, k]: row i, column j = offset j's argmax after fed token i
    });
    const best = await ids.data();
    let accepted = 0;
    while (accepted < m && best[accepted * k] === p.drafts[accepted]) accepted++; // greedy acceptance
    const at = accepted * k;
    const verifier = Array.from({ length: m + 1 }, (_, i) => best[i * k]!); // offset 0 at every row
    const drafts = best.subarray(at + 1, at + k); // offsets 1…d at the last kept position
    const finite = allTokens(verifier, model.vocabSize) && allTokens(drafts, model.vocabSize);
    return { accepted, next: best[at]!, drafts: Array.from(drafts), draftProbs: null, finite };
  } finally {
    states.dispose();
    ids?.dispose();
  }
}

/** propose: the carried block, its drafts cut to what fits in the model's context. */
function propose(carried: Proposal, model: MultiTokenModel): Proposal {
  const room = model.maxLength - model.length - carried.pending.length;
  return room >= carried.drafts.length ? carried : { ...carried, drafts: carried.drafts.slice(0, Math.max(0, room)) };
}

/** accept: the kept drafts (from offsets 1…a), then the verifier's own token. */
function accept(block: Proposal, step: Step): Forward {
  const kept = block.drafts.slice(0, step.accepted);
  return { tokens: [...kept, step.next], sources: [...kept.map((_, i) => i + 1), 0], drafted: block.drafts.length, finite: step.finite };
}

/** advance: keep the fed positions whose tokens are committed, roll back the rest; carry the new drafts. */
function advance(model: MultiTokenModel, start: number, block: Proposal, step: Step): Proposal {
  block.draftProbs?.dispose();
  try {
    model.truncate(start + block.pending.length + step.accepted);
  } catch (error) {
    step.draftProbs?.dispose(); // not carried: the loop ends here
    throw error;
  }
  return { pending: [step.next], drafts: step.drafts, draftProbs: step.draftProbs };
}

/** The loop: propose → verify → accept → advance, one forward per step. */
function speculativeLoop(model: MultiTokenModel, o: ResolvedSpeculativeOptions): Loop {
  return async function* (random) {
    let carried: Proposal = { pending: o.prompt, drafts: [], draftProbs: null };
    const fast = (o.sampling.temperature === 0 || o.acceptance === 'greedy') && model.headArgmax !== undefined;
    try {
      for (;;) {
        const block = propose(carried, model);
        const start = model.length;
        const step = fast ? await verifyGreedy(model as Parameters<typeof verifyGreedy>[0], block, o.draftLength) : await verify(model, block, o, random);
        const forward = accept(block, step);
        carried = advance(model, start, block, step);
        yield forward;
      }
    } finally {
      carried.draftProbs?.dispose();
    }
  };
}

/** What a tree step carries to the next: the committed token(s) not yet fed, and the candidates ranked at the accepted node. */
interface TreeCarry {
  pending: number[];
  draft: TreeDraft | null;
}

/**
 * propose (tree): the tree of candidates under the last pending token, cut to the depths the
 * context holds (with `tree: 'auto'`, to the best-first prefix worth its measured cost).
 */
function proposeTree(carried: TreeCarry, model: MultiTokenModel, spec: TreeSpec, costs: readonly TreeCost[] | null): TreeBlock {
  const room = model.maxLength - model.length - carried.pending.length;
  return { pending: carried.pending, tree: growTree(spec, carried.draft, room, costs) };
}

/** accept (tree): the accepted path's tokens (node depth d = offset d), then the verifier's own token. */
function acceptTree(block: TreeBlock, step: TreeStep): Forward {
  const { nodes, tokens } = block.tree;
  const path = step.verdict.path;
  const depth = nodes.reduce((a, n) => Math.max(a, n.depth), 0);
  const tree = { tokens: tokens.slice(), parents: nodes.map((n) => n.parent), accepted: path.slice() }; // what the step verified, for views
  return { tokens: [...path.map((i) => tokens[i]!), step.verdict.next], sources: [...path.map((i) => nodes[i]!.depth), 0], drafted: depth, nodes: nodes.length, finite: step.finite, tree };
}

/** advance (tree): keep the fed positions whose tokens are committed (the pending ones and the path), drop the rest of the tree. */
function advanceTree(model: TreeModel, block: TreeBlock, step: TreeStep): TreeCarry {
  const P = block.pending.length;
  model.keepRows([...block.pending.map((_, i) => i), ...step.verdict.path.map((i) => P + i)]);
  return { pending: [step.verdict.next], draft: step.draft };
}

/** The tree loop: propose → verify → accept → advance, one forward per step. */
function treeLoop(model: TreeModel, o: ResolvedSpeculativeOptions, spec: TreeSpec): Loop {
  return async function* (random) {
    let carried: TreeCarry = { pending: o.prompt, draft: null };
    // 'auto': the forward's cost per node count, measured once per model, backend and depth (later decodes reuse it)
    const budgets = TREE_AUTO_DEFAULTS.budgets.filter((n) => n <= spec.maxNodes);
    const costs = spec.auto ? await measureTreeCosts(model, budgets, spec.depth, o.signal ? { signal: o.signal } : {}) : null;
    for (;;) {
      const block = proposeTree(carried, model, spec, costs);
      const step = await verifyTree(model, block, spec, o, random);
      const forward = acceptTree(block, step);
      carried = advanceTree(model, block, step);
      yield forward;
    }
  };
}

/** Runs {@link speculativeLoop} (or, with a tree, {@link treeLoop}) in a decode session. */
function speculative(model: MultiTokenModel, o: ResolvedSpeculativeOptions, stream: boolean): AsyncGenerator<TokenChunk, DecodeResult, void> {
  const loop = o.tree === null ? speculativeLoop(model, o) : treeLoop(model as TreeModel, o, o.tree);
  return decodeSession(model, o, loop, stream);
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
 * Self-speculative decoding: each forward verifies the previous block of drafts with offset 0
 * and drafts the next block with offsets 1…`draftLength`, committing 1…`draftLength + 1`
 * tokens. With `acceptance: 'greedy'` (default) the output equals `greedyDecode`'s token for
 * token; with `'sampling'` it is distributed exactly as ordinary sampling; `'typical'` trades
 * exactness for longer accepted blocks.
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
