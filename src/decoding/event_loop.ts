/**
 * Giving the event loop a turn between decoding steps. On the cpu and wasm backends
 * `await tensor.data()` resolves as a microtask, so without this a decode would run to its end
 * before any timer, message, click or repaint — an abort button could never stop it.
 *
 * A turn must be a real macrotask of ordinary priority (so timers and input run) that costs
 * microseconds, not a `setTimeout(0)` clamped to 4 ms after a few nestings. In order of
 * preference: `setImmediate` (Node and Bun; checked first because a Node MessagePort with a
 * listener keeps the process alive), a `MessageChannel` post (every browser and worker), and
 * `setTimeout` as a last resort.
 *
 * Not `scheduler.yield()`: Chromium runs its continuations ahead of every ordinary task, so a
 * loop of them starves timers and input — measured on the example page (wasm), a 50 ms timer
 * did not fire, nor did a click on Stop register, for the whole 3.5 s decode.
 */

type Immediate = (callback: () => void) => unknown;

let channel: MessageChannel | null = null;
const waiting: (() => void)[] = [];

/** Resolves on a fresh MessageChannel message (one shared channel; resolvers in post order). */
function viaMessageChannel(): Promise<void> {
  if (channel === null) {
    channel = new MessageChannel();
    channel.port1.onmessage = () => waiting.shift()?.();
  }
  const port = channel.port2;
  return new Promise((resolve) => {
    waiting.push(resolve);
    port.postMessage(null);
  });
}

/** Resolves after the event loop has run other tasks (timers, messages, input) once. */
export function macrotask(): Promise<void> {
  const setImmediate = (globalThis as { setImmediate?: Immediate }).setImmediate;
  if (typeof setImmediate === 'function') return new Promise((resolve) => setImmediate(resolve));
  if (typeof MessageChannel === 'function') return viaMessageChannel();
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** `performance.now()` where it exists, else `Date.now()`. */
export function now(): number {
  return globalThis.performance?.now() ?? Date.now();
}
