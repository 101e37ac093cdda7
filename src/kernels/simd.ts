/**
 * Attention's two inner loops, and a small matmul, as WebAssembly SIMD over the wasm backend's
 * own memory (the module imports it, so nothing is copied): the scores of one query against a
 * key/value head's cached positions, and the probability-weighted sum of its values — both walk
 * the static cache's lanes (`[Hkv·hs, capacity]`: one lane per head dimension, positions
 * contiguous), four positions per f32x4 operation, what the JS loops in `math.ts` do one at a
 * time — and `y = b + x·W` for the few rows of a decode step, four outputs per operation, which
 * for a small model's projections costs less than the backend's matmul kernel's call overhead.
 *
 * The module is assembled here from its instructions (below, with the text form of each
 * function), about 300 bytes; `simdLoops` returns null where the engine has no SIMD.
 *
 * Reference: the WebAssembly SIMD proposal (f32x4 splat/mul/add, v128 load/store, extract_lane);
 * the binary format of the WebAssembly core specification §5.
 */

/** The two loops, on byte offsets into the memory the module was made for. */
export interface SimdLoops {
  /** `out[j] = Σ_d q[d] · k[d·cap + j]` for j < n (`q`, `k`, `out` byte offsets; `cap4` = cap · 4 bytes). */
  scores(q: number, k: number, out: number, n: number, hs: number, cap4: number): void;
  /** `out[d] = Σ_j p[j] · v[d·cap + j]` for d < hs, j < n. */
  weighted(p: number, v: number, out: number, n: number, hs: number, cap4: number): void;
  /** `y[t] = b + x[t]·W` for t < rows: `x` `[rows, in]`, `W` `[in, out]`, `b` `[out]` (0: none), `y` `[rows, out]`. */
  matmul(x: number, w: number, b: number, y: number, rows: number, inDim: number, outDim: number): void;
  /**
   * Softmax's numerator in place: `s[j] = exp(s[j] − max s)` for j < n (n a multiple of 4: pad
   * with −Infinity), returning Σ s[j]. The exp is a degree-7 polynomial in float32 (relative error
   * about 1e-7), arguments below −87 taken as −87 (a weight under 2e-38 beside the largest's 1).
   */
  softmax(s: number, n: number): number;
}

const made = new WeakMap<WebAssembly.Memory, SimdLoops | null>();

/** The loops over `memory`, instantiated once per memory; null without WebAssembly SIMD. */
export function simdLoops(memory: WebAssembly.Memory): SimdLoops | null {
  if (made.has(memory)) return made.get(memory)!;
  let loops: SimdLoops | null = null;
  try {
    const bytes = moduleBytes();
    if (typeof WebAssembly !== 'undefined' && WebAssembly.validate(bytes)) {
      const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
      loops = instance.exports as unknown as SimdLoops;
    }
  } catch {
    loops = null; // no SIMD (or no WebAssembly): the JS loops run instead
  }
  made.set(memory, loops);
  return loops;
}

// ---- the binary ----

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;

function leb(n: number): number[] {
  const out: number[] = [];
  let v = n >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  let v = n | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

const vec = (items: number[][]): number[] => [...leb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...leb(body.length), ...body];
const name = (s: string): number[] => vec([...s].map((c) => [c.charCodeAt(0)]));

/** Instructions, in the binary's order (operands before their operator). */
const op = {
  get: (i: number) => [0x20, ...leb(i)],
  set: (i: number) => [0x21, ...leb(i)],
  i32: (n: number) => [0x41, ...sleb(n)],
  f32zero: [0x43, 0, 0, 0, 0],
  add: [0x6a],
  mul: [0x6c],
  shl: [0x74],
  geS: [0x4e],
  gtS: [0x4a],
  select: [0x1b],
  f32const: (v: number) => [0x43, ...new Uint8Array(new Float32Array([v]).buffer)],
  f32max: [0x97],
  teeLocal: (i: number) => [0x22, ...leb(i)],
  f32x4sub: [0xfd, ...leb(229)],
  f32x4max: [0xfd, ...leb(233)],
  f32x4nearest: [0xfd, ...leb(106)],
  i32x4splat: [0xfd, ...leb(17)],
  i32x4add: [0xfd, ...leb(174)],
  i32x4shl: [0xfd, ...leb(171)],
  i32x4truncSat: [0xfd, ...leb(248)],
  f32load: [0x2a, 0, 0],
  f32store: [0x38, 0, 0],
  f32add: [0x92],
  f32mul: [0x94],
  v128load: [0xfd, ...leb(0), 0, 0],
  v128store: [0xfd, ...leb(11), 0, 0],
  v128zero: [0xfd, ...leb(12), ...new Array<number>(16).fill(0)],
  splat: [0xfd, ...leb(19)],
  lane: (i: number) => [0xfd, ...leb(31), i],
  f32x4add: [0xfd, ...leb(228)],
  f32x4mul: [0xfd, ...leb(230)],
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  br: (depth: number) => [0x0c, ...leb(depth)],
  brIf: (depth: number) => [0x0d, ...leb(depth)],
  end: [0x0b],
};

// params: 0 q|p, 1 k|v, 2 out, 3 n, 4 hs, 5 cap4; locals: 6 j, 7 d, 8 pk, 9 pq, 10 acc (v128), 11 s (f32)
const [Q, K, OUT, N, HS, CAP4, J, D, PK, PQ, ACC, S] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const LOCALS = vec([[...leb(4), I32], [...leb(1), V128], [...leb(1), F32]]);

/** `x = x + c` for an i32 local. */
const bump = (x: number, c: number[]): number[] => [...op.get(x), ...c, ...op.add, ...op.set(x)];
/** `base + (j << 2)`. */
const at = (base: number, j: number): number[] => [...op.get(base), ...op.get(j), ...op.i32(2), ...op.shl, ...op.add];

/*
 * (func $scores (param $q $k $out $n $hs $cap4 i32)
 *   j = 0
 *   block loop                                   ;; four positions at a time
 *     br_if 1 (j + 4 > n)
 *     acc = 0; pk = k + 4j; pq = q; d = 0
 *     block loop
 *       br_if 1 (d >= hs)
 *       acc = acc + splat(f32.load pq) * v128.load pk
 *       pk += cap4; pq += 4; d += 1; br 0
 *     end end
 *     v128.store (out + 4j) acc; j += 4; br 0
 *   end end
 *   block loop                                   ;; the remaining positions
 *     br_if 1 (j >= n)
 *     s = 0; pk = k + 4j; pq = q; d = 0
 *     block loop
 *       br_if 1 (d >= hs)
 *       s = s + f32.load pq * f32.load pk
 *       pk += cap4; pq += 4; d += 1; br 0
 *     end end
 *     f32.store (out + 4j) s; j += 1; br 0
 *   end end)
 */
function scoresBody(): number[] {
  const inner = (fourWide: boolean): number[] => [
    ...op.block, ...op.loop,
    ...op.get(D), ...op.get(HS), ...op.geS, ...op.brIf(1),
    ...(fourWide
      ? [...op.get(ACC), ...op.get(PQ), ...op.f32load, ...op.splat, ...op.get(PK), ...op.v128load, ...op.f32x4mul, ...op.f32x4add, ...op.set(ACC)]
      : [...op.get(S), ...op.get(PQ), ...op.f32load, ...op.get(PK), ...op.f32load, ...op.f32mul, ...op.f32add, ...op.set(S)]),
    ...bump(PK, op.get(CAP4)), ...bump(PQ, op.i32(4)), ...bump(D, op.i32(1)), ...op.br(0),
    ...op.end, ...op.end,
  ];
  const start = (fourWide: boolean): number[] => [
    ...(fourWide ? [...op.v128zero, ...op.set(ACC)] : [...op.f32zero, ...op.set(S)]),
    ...at(K, J), ...op.set(PK), ...op.get(Q), ...op.set(PQ), ...op.i32(0), ...op.set(D),
  ];
  return [
    ...op.i32(0), ...op.set(J),
    ...op.block, ...op.loop,
    ...op.get(J), ...op.i32(4), ...op.add, ...op.get(N), ...op.gtS, ...op.brIf(1),
    ...start(true), ...inner(true),
    ...at(OUT, J), ...op.get(ACC), ...op.v128store, ...bump(J, op.i32(4)), ...op.br(0),
    ...op.end, ...op.end,
    ...op.block, ...op.loop,
    ...op.get(J), ...op.get(N), ...op.geS, ...op.brIf(1),
    ...start(false), ...inner(false),
    ...at(OUT, J), ...op.get(S), ...op.f32store, ...bump(J, op.i32(1)), ...op.br(0),
    ...op.end, ...op.end,
    ...op.end,
  ];
}

/*
 * (func $weighted (param $p $v $out $n $hs $cap4 i32)
 *   d = 0; pk = v
 *   block loop                                   ;; one head dimension (a lane) at a time
 *     br_if 1 (d >= hs)
 *     acc = 0; j = 0
 *     block loop
 *       br_if 1 (j + 4 > n)
 *       acc = acc + v128.load (p + 4j) * v128.load (pk + 4j); j += 4; br 0
 *     end end
 *     s = lane0(acc) + lane1(acc) + lane2(acc) + lane3(acc)
 *     block loop
 *       br_if 1 (j >= n)
 *       s = s + f32.load (p + 4j) * f32.load (pk + 4j); j += 1; br 0
 *     end end
 *     f32.store (out + 4d) s; pk += cap4; d += 1; br 0
 *   end end)
 */
function weightedBody(): number[] {
  return [
    ...op.i32(0), ...op.set(D), ...op.get(K), ...op.set(PK),
    ...op.block, ...op.loop,
    ...op.get(D), ...op.get(HS), ...op.geS, ...op.brIf(1),
    ...op.v128zero, ...op.set(ACC), ...op.i32(0), ...op.set(J),
    ...op.block, ...op.loop,
    ...op.get(J), ...op.i32(4), ...op.add, ...op.get(N), ...op.gtS, ...op.brIf(1),
    ...op.get(ACC), ...at(Q, J), ...op.v128load, ...at(PK, J), ...op.v128load, ...op.f32x4mul, ...op.f32x4add, ...op.set(ACC),
    ...bump(J, op.i32(4)), ...op.br(0),
    ...op.end, ...op.end,
    ...op.get(ACC), ...op.lane(0), ...op.get(ACC), ...op.lane(1), ...op.f32add, ...op.get(ACC), ...op.lane(2), ...op.f32add, ...op.get(ACC), ...op.lane(3), ...op.f32add, ...op.set(S),
    ...op.block, ...op.loop,
    ...op.get(J), ...op.get(N), ...op.geS, ...op.brIf(1),
    ...op.get(S), ...at(Q, J), ...op.f32load, ...at(PK, J), ...op.f32load, ...op.f32mul, ...op.f32add, ...op.set(S),
    ...bump(J, op.i32(1)), ...op.br(0),
    ...op.end, ...op.end,
    ...at(OUT, D), ...op.get(S), ...op.f32store, ...bump(PK, op.get(CAP4)), ...bump(D, op.i32(1)), ...op.br(0),
    ...op.end, ...op.end,
    ...op.end,
  ];
}

// matmul — params: 0 x, 1 w, 2 b, 3 y, 4 rows, 5 in, 6 out; locals: 7 t, 8 i, 9 o, 10 yRow, 11 xRow, 12 wRow, 13 out4, 14 xi (v128), 15 xs (f32)
const [MX, MW, MB, MY, ROWS, IN, OUTD, T, I, O, YROW, XROW, WROW, OUT4, XI, XS] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const MATMUL_LOCALS = vec([[...leb(7), I32], [...leb(1), V128], [...leb(1), F32]]);

/*
 * (func $matmul (param $x $w $b $y $rows $in $out i32)
 *   out4 = out << 2; t = 0
 *   block loop                                   ;; each row
 *     br_if 1 (t >= rows)
 *     yRow = y + t·out4; xRow = x + (t·in << 2)
 *     o = 0
 *     block loop                                 ;; y = b (or 0: select on b ≠ 0)
 *       br_if 1 (o >= out)
 *       f32.store (yRow + 4o) (select (f32.load (b + 4o)) 0 b); o += 1; br 0
 *     end end
 *     i = 0; wRow = w
 *     block loop                                 ;; y += x[i] · W[i, :]
 *       br_if 1 (i >= in)
 *       xs = f32.load (xRow + 4i); xi = splat xs; o = 0
 *       block loop
 *         br_if 1 (o + 4 > out)
 *         v128.store (yRow + 4o) (v128.load (yRow + 4o) + xi · v128.load (wRow + 4o)); o += 4; br 0
 *       end end
 *       block loop
 *         br_if 1 (o >= out)
 *         f32.store (yRow + 4o) (f32.load (yRow + 4o) + xs · f32.load (wRow + 4o)); o += 1; br 0
 *       end end
 *       wRow += out4; i += 1; br 0
 *     end end
 *     t += 1; br 0
 *   end end)
 */
function matmulBody(): number[] {
  return [
    ...op.get(OUTD), ...op.i32(2), ...op.shl, ...op.set(OUT4), ...op.i32(0), ...op.set(T),
    ...op.block, ...op.loop,
    ...op.get(T), ...op.get(ROWS), ...op.geS, ...op.brIf(1),
    ...op.get(MY), ...op.get(T), ...op.get(OUT4), ...op.mul, ...op.add, ...op.set(YROW),
    ...op.get(MX), ...op.get(T), ...op.get(IN), ...op.mul, ...op.i32(2), ...op.shl, ...op.add, ...op.set(XROW),
    ...op.i32(0), ...op.set(O),
    ...op.block, ...op.loop,
    ...op.get(O), ...op.get(OUTD), ...op.geS, ...op.brIf(1),
    ...at(YROW, O), ...at(MB, O), ...op.f32load, ...op.f32zero, ...op.get(MB), ...op.select, ...op.f32store,
    ...bump(O, op.i32(1)), ...op.br(0),
    ...op.end, ...op.end,
    ...op.i32(0), ...op.set(I), ...op.get(MW), ...op.set(WROW),
    ...op.block, ...op.loop,
    ...op.get(I), ...op.get(IN), ...op.geS, ...op.brIf(1),
    ...at(XROW, I), ...op.f32load, ...op.set(XS), ...op.get(XS), ...op.splat, ...op.set(XI), ...op.i32(0), ...op.set(O),
    ...op.block, ...op.loop,
    ...op.get(O), ...op.i32(4), ...op.add, ...op.get(OUTD), ...op.gtS, ...op.brIf(1),
    ...at(YROW, O), ...at(YROW, O), ...op.v128load, ...op.get(XI), ...at(WROW, O), ...op.v128load, ...op.f32x4mul, ...op.f32x4add, ...op.v128store,
    ...bump(O, op.i32(4)), ...op.br(0),
    ...op.end, ...op.end,
    ...op.block, ...op.loop,
    ...op.get(O), ...op.get(OUTD), ...op.geS, ...op.brIf(1),
    ...at(YROW, O), ...at(YROW, O), ...op.f32load, ...op.get(XS), ...at(WROW, O), ...op.f32load, ...op.f32mul, ...op.f32add, ...op.f32store,
    ...bump(O, op.i32(1)), ...op.br(0),
    ...op.end, ...op.end,
    ...bump(WROW, op.get(OUT4)), ...bump(I, op.i32(1)), ...op.br(0),
    ...op.end, ...op.end,
    ...bump(T, op.i32(1)), ...op.br(0),
    ...op.end, ...op.end,
    ...op.end,
  ];
}

// softmax — params: 0 s, 1 n; locals: 2 j, 3 m (v128), 4 acc (v128), 5 y (v128), 6 nn (v128), 7 z (v128), 8 mx (f32); result f32
const [SS, SN, SJ, SM, SACC, SY, SNN, SZ, SMX] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
const SOFTMAX_LOCALS = vec([[...leb(1), I32], [...leb(5), V128], [...leb(1), F32]]);
const splatF = (v: number) => [...op.f32const(v), ...op.splat];

/** exp of the v128 on the stack minus M (see {@link SimdLoops.softmax}), left on the stack. */
function expMinusMax(): number[] {
  const horner = [1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1, 1].flatMap((c) => [...op.get(SZ), ...op.f32x4mul, ...splatF(c), ...op.f32x4add]);
  return [
    ...op.get(SM), ...op.f32x4sub, ...splatF(-87), ...op.f32x4max, ...splatF(Math.LOG2E), ...op.f32x4mul, ...op.teeLocal(SY), // y = max(x − m, −87)·log2 e
    ...op.f32x4nearest, ...op.set(SNN), // n = round(y)
    ...op.get(SY), ...op.get(SNN), ...op.f32x4sub, ...splatF(Math.LN2), ...op.f32x4mul, ...op.set(SZ), // z = (y − n)·ln 2 ∈ [−0.35, 0.35]
    ...splatF(1 / 5040), ...horner, // e^z
    ...op.get(SNN), ...op.i32x4truncSat, ...op.i32(127), ...op.i32x4splat, ...op.i32x4add, ...op.i32(23), ...op.i32x4shl, ...op.f32x4mul, // · 2^n from its exponent bits
  ];
}

/*
 * (func $softmax (param $s $n i32) (result f32)
 *   m = splat(−inf); j = 0
 *   block loop  br_if 1 (j >= n); m = max(m, v128.load (s + 4j)); j += 4; br 0  end end
 *   m = splat(max of m's lanes); acc = 0; j = 0
 *   block loop  br_if 1 (j >= n); e = exp(v128.load (s + 4j) − m); v128.store (s + 4j) e; acc += e; j += 4; br 0  end end
 *   lane0(acc) + lane1(acc) + lane2(acc) + lane3(acc))
 */
function softmaxBody(): number[] {
  return [
    ...splatF(-Infinity), ...op.set(SM), ...op.i32(0), ...op.set(SJ),
    ...op.block, ...op.loop,
    ...op.get(SJ), ...op.get(SN), ...op.geS, ...op.brIf(1),
    ...op.get(SM), ...at(SS, SJ), ...op.v128load, ...op.f32x4max, ...op.set(SM),
    ...bump(SJ, op.i32(4)), ...op.br(0),
    ...op.end, ...op.end,
    ...op.get(SM), ...op.lane(0), ...op.get(SM), ...op.lane(1), ...op.f32max, ...op.get(SM), ...op.lane(2), ...op.f32max, ...op.get(SM), ...op.lane(3), ...op.f32max, ...op.set(SMX),
    ...op.get(SMX), ...op.splat, ...op.set(SM),
    ...op.v128zero, ...op.set(SACC), ...op.i32(0), ...op.set(SJ),
    ...op.block, ...op.loop,
    ...op.get(SJ), ...op.get(SN), ...op.geS, ...op.brIf(1),
    ...at(SS, SJ), // the store's address
    ...at(SS, SJ), ...op.v128load, ...expMinusMax(), ...op.teeLocal(SY), ...op.v128store,
    ...op.get(SACC), ...op.get(SY), ...op.f32x4add, ...op.set(SACC),
    ...bump(SJ, op.i32(4)), ...op.br(0),
    ...op.end, ...op.end,
    ...op.get(SACC), ...op.lane(0), ...op.get(SACC), ...op.lane(1), ...op.f32add, ...op.get(SACC), ...op.lane(2), ...op.f32add, ...op.get(SACC), ...op.lane(3), ...op.f32add,
    ...op.end,
  ];
}

let bytesCache: Uint8Array<ArrayBuffer> | null = null;

function moduleBytes(): Uint8Array<ArrayBuffer> {
  if (bytesCache !== null) return bytesCache;
  const funcType = (params: number) => [0x60, ...vec(new Array<number[]>(params).fill([I32])), ...vec([])]; // (i32 × params) → ()
  const body = (code: number[], locals = LOCALS) => {
    const b = [...locals, ...code];
    return [...leb(b.length), ...b];
  };
  bytesCache = new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // \0asm, version 1
    ...section(1, vec([funcType(6), funcType(7), [0x60, ...vec([[I32], [I32]]), ...vec([[F32]])]])),
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, ...leb(1)]])), // memory, min 1 page, no max
    ...section(3, vec([[0], [0], [1], [2]])),
    ...section(7, vec([[...name('scores'), 0x00, 0], [...name('weighted'), 0x00, 1], [...name('matmul'), 0x00, 2], [...name('softmax'), 0x00, 3]])),
    ...section(10, vec([body(scoresBody()), body(weightedBody()), body(matmulBody(), MATMUL_LOCALS), body(softmaxBody(), SOFTMAX_LOCALS)])),
  ]);
  return bytesCache;
}
