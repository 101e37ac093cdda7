/**
 * The acceptance rules as plain sequential walks in float64 — the textbook form (Medusa's greedy
 * walk, SpecInfer's `VerifyStochastic`, Leviathan et al.'s Algorithm 1, Medusa's typical
 * acceptance) — against which the library's device rules (src/decoding/acceptance.ts, one vector
 * of tests and one argmax, no walk) are checked on grids of uniforms.
 *
 * A tree: node i has token `tokens[i]` and parent `parents[i]` (an earlier node, or −1 for the
 * root); row 0 is the root, row i + 1 node i; `p[r]` is the verifier's distribution at row r.
 */

/** An accepted path and the token after it. */
export interface Walk {
  path: number[];
  next: number;
}

/** Children of each row (row 0 the root, row i + 1 node i), in node order. */
export function childrenOfRows(parents: readonly number[]): number[][] {
  const children: number[][] = Array.from({ length: parents.length + 1 }, () => []);
  parents.forEach((p, i) => children[p + 1]!.push(i));
  return children;
}

/** Inverse-CDF sample of an unnormalised distribution with uniform u (the first index whose cumulative mass exceeds u·total). */
export function sampleIndex(weights: readonly number[], u: number): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let cdf = 0;
  let last = 0;
  for (let i = 0; i < weights.length; i++) {
    if (weights[i]! > 0) last = i;
    cdf += weights[i]!;
    if (cdf > u * total) return i;
  }
  return last;
}

/** Greedy: descend into the child whose token is the argmax `best[row]` of its row. */
export function greedyWalk(tokens: readonly number[], parents: readonly number[], best: readonly number[]): Walk {
  const children = childrenOfRows(parents);
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
 * Speculative sampling, SpecInfer's `VerifyStochastic`: at each row the children are tried in
 * order, child c accepted with probability min(1, p′(x)/q_c(x)) (u[c] < p′(x)/q_c(x)); after a
 * rejection p′ ← norm(max(0, p′ − q_c)). `q[c]` is child c's draft distribution, or null for a
 * point mass on its token. When every child is rejected the token is drawn from p′ with u[N].
 */
export function samplingWalk(tokens: readonly number[], parents: readonly number[], p: readonly number[][], u: readonly number[], q: readonly (readonly number[] | null)[]): Walk {
  const children = childrenOfRows(parents);
  const N = tokens.length;
  const V = p[0]!.length;
  const path: number[] = [];
  let row = 0;
  walk: for (;;) {
    let residual = p[row]!.slice();
    for (const c of children[row]!) {
      const x = tokens[c]!;
      const qc = q[c] ?? Array.from({ length: V }, (_, i) => (i === x ? 1 : 0));
      const total = residual.reduce((a, b) => a + b, 0);
      if (u[c]! * qc[x]! < residual[x]! / total) {
        path.push(c);
        row = c + 1;
        continue walk;
      }
      residual = residual.map((r, i) => Math.max(0, r / total - qc[i]!));
    }
    if (!(residual.reduce((a, b) => a + b, 0) > 0)) residual = p[row]!.slice();
    return { path, next: sampleIndex(residual, u[N]!) };
  }
}

/** Entropy in nats. */
function entropy(p: readonly number[]): number {
  return -p.reduce((a, x) => a + (x > 0 ? x * Math.log(x) : 0), 0);
}

/**
 * Typical acceptance: node i passes when p(x) > min(ε, δ·exp(−H(p))) at its parent; the deepest
 * path whose nodes all pass, the most likely (Σ log p) among equals, the first among ties; the
 * token after it sampled from p at its end with `u`.
 */
export function typicalWalk(tokens: readonly number[], parents: readonly number[], p: readonly number[][], threshold: number, alpha: number, u: number): Walk {
  const ok: boolean[] = [];
  const depth: number[] = [];
  const likelihood: number[] = [];
  let tip = -1;
  tokens.forEach((x, i) => {
    const parent = parents[i]!;
    const row = p[parent + 1]!;
    const bar = Math.min(threshold, alpha * Math.exp(-entropy(row)));
    ok.push(row[x]! > bar && (parent < 0 || ok[parent]!));
    depth.push(parent < 0 ? 1 : depth[parent]! + 1);
    likelihood.push(Math.log(Math.max(row[x]!, 1e-30)) + (parent < 0 ? 0 : likelihood[parent]!));
    if (!ok[i]) return;
    if (tip < 0 || depth[i]! > depth[tip]! || (depth[i] === depth[tip] && likelihood[i]! > likelihood[tip]!)) tip = i;
  });
  const path: number[] = [];
  for (let i = tip; i >= 0; i = parents[i]!) path.unshift(i);
  return { path, next: sampleIndex(p[tip + 1]!, u) };
}
