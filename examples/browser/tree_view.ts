/**
 * The browser example's drawing of one tree step (`TokenChunk.tree`): an SVG laid out left to
 * right, the root (the token committed before the step) at the left, one column per depth, and
 * siblings top to bottom in the order verification tried them (rank order). The accepted
 * root-to-node path is filled with its offsets' colours and joined by heavy edges; the
 * verifier's own token, which ends the step, hangs dashed under the path's last node. Drawing is
 * deferred to the next animation frame and only the latest step is drawn, so a fast decode costs
 * one small SVG per frame at most and the page stays responsive.
 */
import type { TokenChunk } from 'tfjs-mtp';

/** What to draw: a chunk of a tree decode, the token before it, and how a token reads. */
export interface TreeStepView {
  chunk: TokenChunk & { tree: NonNullable<TokenChunk['tree']> };
  root: number;
  /** The text a token stands for (out of context). */
  text: (token: number) => string;
}

const SVG = 'http://www.w3.org/2000/svg';
/** Layout in px: a column per depth, a row per leaf. */
const COLUMN = 74;
const ROW = 22;
const BOX = { width: 60, height: 17 };
const LABEL_CHARS = 8;

/** A label that shows whitespace and stays short. */
function visible(text: string): string {
  const shown = text.replace(/ /g, '␣').replace(/\n/g, '↵').replace(/\t/g, '⇥');
  if (shown.length === 0) return '∅';
  return shown.length > LABEL_CHARS ? `${shown.slice(0, LABEL_CHARS - 1)}…` : shown;
}

/** One drawn node: its token, where it is, and how it is styled. */
interface Placed {
  token: number;
  depth: number;
  y: number;
  /** 'root', 'kept' (on the accepted path), 'tried' (rejected or not reached), 'verifier'. */
  role: 'root' | 'kept' | 'tried' | 'verifier';
  /** Index of the parent in the placed list (−1 for the root). */
  parent: number;
  /** Node index in the chunk's tree (−1 for the root and the verifier's token). */
  node: number;
}

/**
 * Places the root, every node and the verifier's token: leaves take consecutive rows in
 * depth-first order, a parent sits midway between its first and last child.
 */
function layout(view: TreeStepView): Placed[] {
  const { tree, tokens } = view.chunk;
  const accepted = new Set(tree.accepted);
  const whole = tokens.length === tree.accepted.length + 1; // not cut short: the last token is the verifier's
  const placed: Placed[] = [{ token: view.root, depth: 0, y: 0, role: 'root', parent: -1, node: -1 }];
  const children: number[][] = [[]]; // by placed index
  const add = (p: Omit<Placed, 'y'>) => {
    placed.push({ ...p, y: 0 });
    children.push([]);
    children[p.parent]!.push(placed.length - 1);
    return placed.length - 1;
  };
  const at = new Map<number, number>([[-1, 0]]); // tree node (−1 = root) → placed index
  tree.tokens.forEach((token, i) => {
    const parent = at.get(tree.parents[i]!)!;
    at.set(i, add({ token, depth: placed[parent]!.depth + 1, role: accepted.has(i) ? 'kept' : 'tried', parent, node: i }));
  });
  if (whole) {
    const tip = at.get(tree.accepted.at(-1) ?? -1)!;
    add({ token: tokens.at(-1)!, depth: placed[tip]!.depth + 1, role: 'verifier', parent: tip, node: -1 });
  }
  let row = 0;
  const place = (i: number): number => {
    const ys = children[i]!.map(place);
    placed[i]!.y = ys.length === 0 ? row++ : (ys[0]! + ys.at(-1)!) / 2;
    return placed[i]!.y;
  };
  place(0);
  return placed;
}

function element<K extends keyof SVGElementTagNameMap>(name: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

/** Draws `view` into `host` (replacing what was there); returns the SVG. */
export function drawTree(host: HTMLElement, view: TreeStepView): SVGSVGElement {
  const placed = layout(view);
  const rows = Math.max(1, ...placed.map((p) => p.y + 1));
  const depth = Math.max(...placed.map((p) => p.depth));
  const x = (p: Placed) => 4 + p.depth * COLUMN;
  const y = (p: Placed) => 4 + p.y * ROW;
  const svg = element('svg', { width: 8 + depth * COLUMN + BOX.width, height: 8 + (rows - 1) * ROW + BOX.height, role: 'img' });
  svg.setAttribute('aria-label', `draft tree of step ${view.chunk.step}: ${view.chunk.tree.tokens.length} nodes, ${view.chunk.tree.accepted.length} kept`);
  for (const p of placed) {
    if (p.parent < 0) continue;
    const q = placed[p.parent]!;
    const onPath = p.role === 'kept' || p.role === 'verifier';
    svg.append(element('path', {
      d: `M${x(q) + BOX.width},${y(q) + BOX.height / 2} C${x(q) + BOX.width + 8},${y(q) + BOX.height / 2} ${x(p) - 8},${y(p) + BOX.height / 2} ${x(p)},${y(p) + BOX.height / 2}`,
      class: onPath ? 'edge kept' : 'edge',
    }));
  }
  for (const p of placed) {
    const fill = p.role === 'kept' ? `f${p.depth % 8}` : p.role === 'verifier' ? 'f0' : '';
    const g = element('g', { class: `node ${p.role} ${fill}`.trim(), 'data-token': p.token, 'data-depth': p.depth, ...(p.node >= 0 ? { 'data-node': p.node } : {}) });
    const text = view.text(p.token);
    const title = element('title', {});
    title.textContent = `${p.role === 'root' ? 'root: the last committed token' : p.role === 'verifier' ? "the verifier's own token" : `depth ${p.depth}, node ${p.node}${p.role === 'kept' ? ' (accepted)' : ''}`} — ${JSON.stringify(text)} (id ${p.token})`;
    g.append(title, element('rect', { x: x(p), y: y(p), width: BOX.width, height: BOX.height, rx: 3 }));
    const label = element('text', { x: x(p) + BOX.width / 2, y: y(p) + BOX.height - 5, 'text-anchor': 'middle' });
    label.textContent = visible(text);
    g.append(label);
    svg.append(g);
  }
  host.replaceChildren(svg);
  return svg;
}

/** Draws the latest tree step at the next animation frame (at most one drawing per frame). */
export class TreePanel {
  private pending: TreeStepView | null = null;
  private frame = 0;

  constructor(private readonly host: HTMLElement, private readonly caption: HTMLElement) {}

  /** Clears the drawing and shows `message`. */
  reset(message: string): void {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.pending = null;
    this.host.replaceChildren();
    this.caption.textContent = message;
  }

  /** Schedules `view` (replacing a step not yet drawn). */
  show(view: TreeStepView): void {
    this.pending = view;
    if (this.frame === 0) this.frame = requestAnimationFrame(() => this.flush());
  }

  /** Draws the scheduled step now, if any (at the end of a decode). */
  flush(): void {
    cancelAnimationFrame(this.frame);
    this.frame = 0;
    const view = this.pending;
    this.pending = null;
    if (view === null) return;
    drawTree(this.host, view);
    const { tree, tokens, step } = view.chunk;
    const kept = tree.accepted.length;
    const cut = tokens.length !== kept + 1 ? ' (decoding ended inside the step)' : ' + the verifier’s token';
    this.caption.textContent = `Step ${step}: ${tree.tokens.length} draft node${tree.tokens.length === 1 ? '' : 's'} verified in one forward; kept ${kept}${cut}.`;
  }
}
