/**
 * The acceptance rules on a draft tree (the chain's are in acceptance.ts). Each walks down from
 * the root, in JS, over numbers one readback brought back, and returns the accepted root-to-node
 * path (node indices) and the token after it. Row 0 is the root (the last committed token), row
 * i + 1 is node i; `children[r]` lists row r's child nodes in rank order.
 *
 * - greedy: at each node, descend into the child whose token is the verifier's argmax there; the
 *   token after the path is that argmax. Output identical to greedy decoding (Medusa §2.1.2,
 *   SpecInfer §4.2's greedy verification).
 * - sampling: multi-draft speculative sampling (SpecInfer, Miao et al. 2024, Algorithm 2
 *   `VerifyStochastic`; Chen et al. 2023's rule applied per candidate): at node u with target p,
 *   the children x₁, x₂, … are tried in rank order; xᵢ is accepted with probability
 *   min(1, p′(xᵢ)/q(xᵢ)), where p′ is the residual left by the rejections before it, and after a
 *   rejection p′ ← norm(max(0, p′ − q)). Here the candidates are the heads' deterministic top-k,
 *   so each q is the point mass on its candidate: min(1, p′(x)/1) = p′(x), and norm(max(0, p′ − δₓ))
 *   is p′ with x removed and renormalised. Hence xᵢ is accepted with probability
 *   p(xᵢ) / (1 − Σ_{j<i} p(xⱼ)) (siblings are distinct tokens), and when every child is rejected the
 *   token is sampled from p without the children's tokens. The output is distributed exactly as
 *   sampling from p at every position.
 * - typical (lossy, Medusa §2.3.1): a node passes when p(x) > min(ε, δ·exp(−H(p))) at its parent;
 *   the path kept is the deepest one whose nodes all pass (among equals the most likely, as
 *   Medusa's `evaluate_posterior` picks), and the token after it is sampled from p at its end.
 */
import type { TreeNode } from './tree.js';

/** The outcome of a tree step. */
export interface TreeVerdict {
  /** Accepted node indices, root to tip. */
  path: number[];
  /** The token after them. */
  next: number;
}

/** Greedy: `best[r]` is the verifier's argmax at row r. */
export function greedyTreeAccept(tokens: readonly number[], children: readonly number[][], best: ArrayLike<number>): TreeVerdict {
  const path: number[] = [];
  let row = 0;
  for (;;) {
    const hit = children[row]!.find((c) => tokens[c] === best[row]);
    if (hit === undefined) return { path, next: best[row]! };
    path.push(hit);
    row = hit + 1;
  }
}

/**
 * Sampling: `p[i]` is node i's target probability at its parent's row, `u[i]` its uniform, and
 * `residual[r]` a token sampled at row r from p without the tokens of row r's children.
 */
export function samplingTreeAccept(
  tokens: readonly number[],
  children: readonly number[][],
  p: ArrayLike<number>,
  u: ArrayLike<number>,
  residual: ArrayLike<number>,
): TreeVerdict {
  const path: number[] = [];
  let row = 0;
  walk: for (;;) {
    let rejected = 0; // p mass of the children already rejected at this row
    const seen = new Set<number>();
    for (const c of children[row]!) {
      if (seen.has(tokens[c]!)) continue; // a repeated candidate has residual probability 0
      seen.add(tokens[c]!);
      if (u[c]! * (1 - rejected) < p[c]!) { // u < p(x) / (1 − rejected) = p′(x)
        path.push(c);
        row = c + 1;
        continue walk;
      }
      rejected += p[c]!;
    }
    return { path, next: residual[row]! };
  }
}

/**
 * Typical: `pass[i]` says whether node i passes at its parent's row, `p[i]` is its probability
 * there, `sample[r]` a token sampled from p at row r. Among the deepest passing paths, the one of
 * the highest likelihood Σ log p (Medusa's `evaluate_posterior`), the first among equals.
 */
export function typicalTreeAccept(nodes: readonly TreeNode[], pass: ArrayLike<number>, p: ArrayLike<number>, sample: ArrayLike<number>): TreeVerdict {
  const ok: boolean[] = [];
  const logLikelihood: number[] = [];
  let tip = -1;
  nodes.forEach((n, i) => {
    ok.push(pass[i] === 1 && (n.parent < 0 || ok[n.parent]!));
    logLikelihood.push(Math.log(p[i]!) + (n.parent < 0 ? 0 : logLikelihood[n.parent]!));
    if (!ok[i]) return;
    if (tip < 0 || n.depth > nodes[tip]!.depth || (n.depth === nodes[tip]!.depth && logLikelihood[i]! > logLikelihood[tip]!)) tip = i;
  });
  const path: number[] = [];
  for (let i = tip; i >= 0; i = nodes[i]!.parent) path.unshift(i);
  return { path, next: sample[tip + 1]! };
}
