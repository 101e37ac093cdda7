/**
 * A decode step's inner loops as WebAssembly SIMD over the wasm backend's own memory (the module
 * imports it, so nothing is copied):
 *
 * - attention: the scores of one query against a key/value head's cached positions, the
 *   softmax, and the probability-weighted sum of the values — walking the static cache's lanes
 *   (`[Hkv·hs, capacity]`: one lane per head dimension, positions contiguous), four positions per
 *   f32x4 operation — and `attend`, the three for one head in one call;
 * - `y = b + x·W` for the few rows of a decode step: four rows per pass over W, eight outputs per
 *   iteration with the accumulators in registers, which for a small model's projections costs
 *   less than the backend's matmul kernel's call overhead;
 * - `swiglu` (`silu(gate)·up`) and a checked `argmax` (four columns per operation).
 *
 * The module is assembled here from its instructions (below, with the text form of each
 * function), a few kilobytes; `simdLoops` returns null where the engine has no SIMD.
 *
 * Reference: the WebAssembly SIMD proposal (f32x4 splat/mul/add/compare, v128 load/store and
 * bitselect, extract_lane); the binary format of the WebAssembly core specification §5.
 */

/** The loops, on byte offsets into the memory the module was made for. */
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
  /** `out[t, j] = silu(gu[t, j]) · gu[t, f + j]` for t < rows, j < f: `gu` `[rows, 2f]` (gate | up), `out` `[rows, f]`; f a multiple of 4. */
  swiglu(gu: number, out: number, rows: number, f: number): void;
  /**
   * One query head's attention over n positions of a key/value head's lanes, in one call:
   * `out[d] = Σ_j softmax(s)_j · v[d·cap + j] / Σ_j softmax(s)_j` with `s_j = Σ_d q[d] · k[d·cap + j]`
   * (q already scaled) plus `mask[j − (n − m)]` for the last m positions (`mask` 0: none;
   * −Infinity hides a position). `s` is scratch for n + 3 floats.
   */
  attend(q: number, k: number, v: number, out: number, s: number, n: number, hs: number, cap4: number, mask: number, m: number): void;
  /**
   * The index of the largest of `p[0 … n)` (n a multiple of 4; the first among equals), or −1
   * when some value is NaN, ±Infinity or at least `limit` in magnitude (the caller then takes
   * the exact path).
   */
  argmax(p: number, n: number, limit: number): number;
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
      type Matmul = (x: number, w: number, b: number, y: number, inDim: number, outDim: number) => void;
      const e = instance.exports as unknown as Omit<SimdLoops, 'matmul'> & Record<`matmul${1 | 2 | 3 | 4}`, Matmul>;
      const byRows = [e.matmul1, e.matmul2, e.matmul3, e.matmul4];
      loops = {
        scores: e.scores,
        weighted: e.weighted,
        softmax: e.softmax,
        swiglu: e.swiglu,
        attend: e.attend,
        argmax: e.argmax,
        matmul(x, w, b, y, rows, inDim, outDim) {
          // four rows per pass (each of W's rows read once for all four), then the rest in one
          for (let t = 0; t < rows; t += 4) byRows[Math.min(rows - t, 4) - 1]!(x + 4 * t * inDim, w, b, y + 4 * t * outDim, inDim, outDim);
        },
      };
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
  sub: [0x6b],
  and: [0x71],
  f32div: [0x95],
  call: (f: number) => [0x10, ...leb(f)],
  if: [0x04, 0x40],
  return: [0x0f],
  f32x4gt: [0xfd, ...leb(68)],
  f32x4ne: [0xfd, ...leb(66)],
  v128or: [0xfd, ...leb(80)],
  anyTrue: [0xfd, ...leb(83)],
  i32lane: (i: number) => [0xfd, ...leb(27), i],
  v128i32: (a: number, b: number, c: number, d: number) => [0xfd, ...leb(12), ...new Uint8Array(new Int32Array([a, b, c, d]).buffer)],
  f32gt: [0x5e],
  f32eq: [0x5b],
  ltS: [0x48],
  or: [0x72],
  f32x4abs: [0xfd, ...leb(224)],
  f32x4neg: [0xfd, ...leb(225)],
  f32x4div: [0xfd, ...leb(231)],
  f32x4ge: [0xfd, ...leb(70)],
  bitselect: [0xfd, ...leb(82)],
  ifV128: [0x04, V128],
  else: [0x05],
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

// matmul over R ≤ 4 rows — params: 0 x, 1 w, 2 b, 3 y, 4 in, 5 out; i32 locals: 6 in4, 7 out4, 8 o, 9 i4, 10 wp, 11–14 xRow r, 15–18 yRow r;
// v128 locals: 19–26 acc r,c (r·2 + c), 27–28 w c, 29 xv; f32 locals: 30–33 s r, 34 ws
const [MX, MW, MB, MY, MIN, MOUT, IN4, OUT4, O, I4, WP] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
const XROW = (r: number) => 11 + r;
const YROW = (r: number) => 15 + r;
const ACCV = (r: number, c: number) => 19 + 2 * r + c;
const WV = (c: number) => 27 + c;
const [XV, WS] = [29, 34];
const SUM = (r: number) => 30 + r;
const MATMUL_LOCALS = vec([[...leb(13), I32], [...leb(11), V128], [...leb(5), F32]]);

/** A v128 load or store at the address on the stack plus a constant byte offset. */
const v128At = (opcode: number, offset: number): number[] => [0xfd, ...leb(opcode), 0, ...leb(offset)];

/*
 * (func $matmulR (param $x $w $b $y $in $out i32)   ;; y[r] = b + x[r]·W for the R rows r < R
 *   in4 = in << 2; out4 = out << 2; xRow r = x + r·in4; yRow r = y + r·out4; o = 0
 *   for (width, C) in (8, 2), (4, 1):                ;; C vectors of four outputs at a time
 *     block loop
 *       br_if 1 (o + width > out)
 *       acc r,c = b ≠ 0 ? v128.load (b + 4o + 16c) : 0
 *       wp = w + 4o; i4 = 0
 *       block loop                                   ;; each input: W's row loaded once for all R rows
 *         br_if 1 (i4 >= in4)
 *         w c = v128.load (wp + 16c)
 *         xv = splat (f32.load (xRow r + i4)); acc r,c += xv · w c   for each r
 *         wp += out4; i4 += 4; br 0
 *       end end
 *       v128.store (yRow r + 4o + 16c) acc r,c; o += width; br 0
 *     end end
 *   block loop                                       ;; the last out mod 4 outputs, one at a time
 *     br_if 1 (o >= out)
 *     s r = b ≠ 0 ? f32.load (b + 4o) : 0; wp = w + 4o; i4 = 0
 *     block loop
 *       br_if 1 (i4 >= in4)
 *       ws = f32.load wp; s r += f32.load (xRow r + i4) · ws; wp += out4; i4 += 4; br 0
 *     end end
 *     f32.store (yRow r + 4o) s r; o += 1; br 0
 *   end end)
 *
 * The accumulators stay in registers for the whole input loop, and each of W's rows is read
 * once per call rather than once per row.
 */
function matmulBody(R: number): number[] {
  const rows = Array.from({ length: R }, (_, r) => r);
  const setup = [
    ...op.get(MIN), ...op.i32(2), ...op.shl, ...op.set(IN4),
    ...op.get(MOUT), ...op.i32(2), ...op.shl, ...op.set(OUT4),
    ...rows.flatMap((r) => [...op.get(MX), ...op.get(IN4), ...op.i32(r), ...op.mul, ...op.add, ...op.set(XROW(r))]),
    ...rows.flatMap((r) => [...op.get(MY), ...op.get(OUT4), ...op.i32(r), ...op.mul, ...op.add, ...op.set(YROW(r))]),
    ...op.i32(0), ...op.set(O),
  ];
  const vectors = (C: number): number[] => {
    const cols = Array.from({ length: C }, (_, c) => c);
    return [
      ...op.block, ...op.loop,
      ...op.get(O), ...op.i32(4 * C), ...op.add, ...op.get(MOUT), ...op.gtS, ...op.brIf(1),
      ...rows.flatMap((r) => cols.flatMap((c) => [
        ...op.get(MB), ...op.ifV128, ...at(MB, O), ...v128At(0, 16 * c), ...op.else, ...op.v128zero, ...op.end, ...op.set(ACCV(r, c)),
      ])),
      ...at(MW, O), ...op.set(WP), ...op.i32(0), ...op.set(I4),
      ...op.block, ...op.loop,
      ...op.get(I4), ...op.get(IN4), ...op.geS, ...op.brIf(1),
      ...cols.flatMap((c) => [...op.get(WP), ...v128At(0, 16 * c), ...op.set(WV(c))]),
      ...rows.flatMap((r) => [
        ...op.get(XROW(r)), ...op.get(I4), ...op.add, ...op.f32load, ...op.splat, ...op.set(XV),
        ...cols.flatMap((c) => [...op.get(ACCV(r, c)), ...op.get(XV), ...op.get(WV(c)), ...op.f32x4mul, ...op.f32x4add, ...op.set(ACCV(r, c))]),
      ]),
      ...bump(WP, op.get(OUT4)), ...bump(I4, op.i32(4)), ...op.br(0),
      ...op.end, ...op.end,
      ...rows.flatMap((r) => cols.flatMap((c) => [...at(YROW(r), O), ...op.get(ACCV(r, c)), ...v128At(11, 16 * c)])),
      ...bump(O, op.i32(4 * C)), ...op.br(0),
      ...op.end, ...op.end,
    ];
  };
  const scalars = [
    ...op.block, ...op.loop,
    ...op.get(O), ...op.get(MOUT), ...op.geS, ...op.brIf(1),
    ...rows.flatMap((r) => [...at(MB, O), ...op.f32load, ...op.f32zero, ...op.get(MB), ...op.select, ...op.set(SUM(r))]),
    ...at(MW, O), ...op.set(WP), ...op.i32(0), ...op.set(I4),
    ...op.block, ...op.loop,
    ...op.get(I4), ...op.get(IN4), ...op.geS, ...op.brIf(1),
    ...op.get(WP), ...op.f32load, ...op.set(WS),
    ...rows.flatMap((r) => [...op.get(SUM(r)), ...op.get(XROW(r)), ...op.get(I4), ...op.add, ...op.f32load, ...op.get(WS), ...op.f32mul, ...op.f32add, ...op.set(SUM(r))]),
    ...bump(WP, op.get(OUT4)), ...bump(I4, op.i32(4)), ...op.br(0),
    ...op.end, ...op.end,
    ...rows.flatMap((r) => [...at(YROW(r), O), ...op.get(SUM(r)), ...op.f32store]),
    ...bump(O, op.i32(1)), ...op.br(0),
    ...op.end, ...op.end,
  ];
  return [...setup, ...vectors(2), ...vectors(1), ...scalars, ...op.end];
}

// softmax — params: 0 s, 1 n; locals: 2 j, 3 m (v128), 4 acc (v128), 5 y (v128), 6 nn (v128), 7 z (v128), 8 mx (f32); result f32
const [SS, SN, SJ, SM, SACC, SY, SNN, SZ, SMX] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
const SOFTMAX_LOCALS = vec([[...leb(1), I32], [...leb(5), V128], [...leb(1), F32]]);
const splatF = (v: number) => [...op.f32const(v), ...op.splat];

/** exp of the v128 on the stack (each lane ≤ 0; below −87 taken as −87), left on the stack; `y`, `n`, `z` are v128 scratch locals. */
function expOf(y: number, n: number, z: number): number[] {
  const horner = [1 / 720, 1 / 120, 1 / 24, 1 / 6, 1 / 2, 1, 1].flatMap((c) => [...op.get(z), ...op.f32x4mul, ...splatF(c), ...op.f32x4add]);
  return [
    ...splatF(-87), ...op.f32x4max, ...splatF(Math.LOG2E), ...op.f32x4mul, ...op.teeLocal(y), // y = max(x, −87)·log2 e
    ...op.f32x4nearest, ...op.set(n), // n = round(y)
    ...op.get(y), ...op.get(n), ...op.f32x4sub, ...splatF(Math.LN2), ...op.f32x4mul, ...op.set(z), // z = (y − n)·ln 2 ∈ [−0.35, 0.35]
    ...splatF(1 / 5040), ...horner, // e^z
    ...op.get(n), ...op.i32x4truncSat, ...op.i32(127), ...op.i32x4splat, ...op.i32x4add, ...op.i32(23), ...op.i32x4shl, ...op.f32x4mul, // · 2^n from its exponent bits
  ];
}

/** exp of the v128 on the stack minus M (see {@link SimdLoops.softmax}), left on the stack. */
const expMinusMax = (): number[] => [...op.get(SM), ...op.f32x4sub, ...expOf(SY, SNN, SZ)];

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

// swiglu — params: 0 gu, 1 out, 2 rows, 3 f; i32 locals: 4 t, 5 j4, 6 f4, 7 gp, 8 po, 9 fb; v128 locals: 10 x, 11 e, 12 y, 13 n, 14 z
const [GU, GOUT, GROWS, GF, GT, GJ4, GF4, GP, PO, FB, GX, GE, GY, GN, GZ] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14];
const SWIGLU_LOCALS = vec([[...leb(6), I32], [...leb(5), V128]]);

/*
 * (func $swiglu (param $gu $out $rows $f i32)       ;; out[t, j] = silu(gu[t, j]) · gu[t, f + j], f a multiple of 4
 *   fb = f << 2; f4 = fb; gp = gu; po = out; t = 0
 *   block loop
 *     br_if 1 (t >= rows)
 *     j4 = 0
 *     block loop
 *       br_if 1 (j4 >= f4)
 *       x = v128.load (gp + j4); e = exp(−|x|)       ;; σ(x) = (x ≥ 0 ? 1 : e) / (1 + e), no overflow either side
 *       v128.store (po + j4) (x · bitselect(1, e, x ≥ 0) / (1 + e) · v128.load (gp + fb + j4)); j4 += 16; br 0
 *     end end
 *     gp += 2·fb; po += fb; t += 1; br 0
 *   end end)
 */
function swigluBody(): number[] {
  return [
    ...op.get(GF), ...op.i32(2), ...op.shl, ...op.teeLocal(FB), ...op.set(GF4),
    ...op.get(GU), ...op.set(GP), ...op.get(GOUT), ...op.set(PO), ...op.i32(0), ...op.set(GT),
    ...op.block, ...op.loop,
    ...op.get(GT), ...op.get(GROWS), ...op.geS, ...op.brIf(1),
    ...op.i32(0), ...op.set(GJ4),
    ...op.block, ...op.loop,
    ...op.get(GJ4), ...op.get(GF4), ...op.geS, ...op.brIf(1),
    ...op.get(GP), ...op.get(GJ4), ...op.add, ...op.v128load, ...op.teeLocal(GX),
    ...op.f32x4abs, ...op.f32x4neg, ...expOf(GY, GN, GZ), ...op.set(GE),
    ...op.get(PO), ...op.get(GJ4), ...op.add, // the store's address
    ...op.get(GX), ...splatF(1), ...op.get(GE), ...op.get(GX), ...op.v128zero, ...op.f32x4ge, ...op.bitselect, ...op.f32x4mul,
    ...op.get(GE), ...splatF(1), ...op.f32x4add, ...op.f32x4div,
    ...op.get(GP), ...op.get(FB), ...op.add, ...op.get(GJ4), ...op.add, ...op.v128load, ...op.f32x4mul,
    ...op.v128store,
    ...bump(GJ4, op.i32(16)), ...op.br(0),
    ...op.end, ...op.end,
    ...op.get(GP), ...op.get(FB), ...op.i32(1), ...op.shl, ...op.add, ...op.set(GP),
    ...bump(PO, op.get(FB)), ...bump(GT, op.i32(1)), ...op.br(0),
    ...op.end, ...op.end,
    ...op.end,
  ];
}

// attend — params: 0 q, 1 k, 2 v, 3 out, 4 s, 5 n, 6 hs, 7 cap4, 8 mask, 9 m; i32 locals: 10 j, 11 padded, 12 at; f32 locals: 13 inv
const [AQ, AK, AV, AOUT, AS, AN, AHS, ACAP4, AMASK, AM, AJ, APAD, AAT, AINV] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
const ATTEND_LOCALS = vec([[...leb(3), I32], [...leb(1), F32]]);
/** Function indices in the module (the order of `moduleBytes`' list), for `call`. */
const FN = { scores: 0, weighted: 1, softmax: 2 };

/*
 * (func $attend (param $q $k $v $out $s $n $hs $cap4 $mask $m i32)
 *   scores(q, k, s, n, hs, cap4)
 *   if mask ≠ 0: at = s + 4(n − m); for j < m: f32.store (at + 4j) (f32.load (at + 4j) + f32.load (mask + 4j))
 *   padded = (n + 3) & −4; for j in n … padded − 1: f32.store (s + 4j) −inf
 *   inv = 1 / softmax(s, padded)
 *   weighted(s, v, out, n, hs, cap4)
 *   for j < hs: f32.store (out + 4j) (f32.load (out + 4j) · inv))
 */
function attendBody(): number[] {
  const loopTo = (limit: number[], body: number[]) => [
    ...op.block, ...op.loop,
    ...op.get(AJ), ...limit, ...op.geS, ...op.brIf(1),
    ...body,
    ...bump(AJ, op.i32(1)), ...op.br(0),
    ...op.end, ...op.end,
  ];
  return [
    ...op.get(AQ), ...op.get(AK), ...op.get(AS), ...op.get(AN), ...op.get(AHS), ...op.get(ACAP4), ...op.call(FN.scores),
    ...op.get(AMASK), ...op.if,
    ...op.get(AS), ...op.get(AN), ...op.get(AM), ...op.sub, ...op.i32(2), ...op.shl, ...op.add, ...op.set(AAT),
    ...op.i32(0), ...op.set(AJ),
    ...loopTo(op.get(AM), [...at(AAT, AJ), ...at(AAT, AJ), ...op.f32load, ...at(AMASK, AJ), ...op.f32load, ...op.f32add, ...op.f32store]),
    ...op.end,
    ...op.get(AN), ...op.i32(3), ...op.add, ...op.i32(-4), ...op.and, ...op.set(APAD),
    ...op.get(AN), ...op.set(AJ),
    ...loopTo(op.get(APAD), [...at(AS, AJ), ...op.f32const(-Infinity), ...op.f32store]),
    ...op.f32const(1), ...op.get(AS), ...op.get(APAD), ...op.call(FN.softmax), ...op.f32div, ...op.set(AINV),
    ...op.get(AS), ...op.get(AV), ...op.get(AOUT), ...op.get(AN), ...op.get(AHS), ...op.get(ACAP4), ...op.call(FN.weighted),
    ...op.i32(0), ...op.set(AJ),
    ...loopTo(op.get(AHS), [...at(AOUT, AJ), ...at(AOUT, AJ), ...op.f32load, ...op.get(AINV), ...op.f32mul, ...op.f32store]),
    ...op.end,
  ];
}

// argmax — params: 0 p, 1 n, 2 limit (f32); i32 locals: 3 j, 4 bi, 5 i; v128 locals: 6 best, 7 idx, 8 cur, 9 x, 10 big, 11 more; f32 locals: 12 bv, 13 v
const [XP, XN, XLIMIT, XJ, XBI, XI, XBEST, XIDX, XCUR, XX, XBAD, XMORE, XBV, XVAL] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];
const ARGMAX_LOCALS = vec([[...leb(3), I32], [...leb(6), V128], [...leb(2), F32]]);

/*
 * (func $argmax (param $p $n i32) (param $limit f32) (result i32)   ;; n a multiple of 4
 *   best = splat(−inf); idx = 0; cur = (0, 1, 2, 3); big = 0; j = 0
 *   block loop
 *     br_if 1 (j >= n)
 *     x = v128.load (p + 4j)
 *     more = x > best                                ;; strictly: each lane keeps its first maximum
 *     best = bitselect(x, best, more); idx = bitselect(cur, idx, more)
 *     big = max(big, |x|)                            ;; NaN once a lane sees one
 *     cur += 4; j += 4; br 0
 *   end end
 *   if any lane of big is ≥ limit or NaN: return −1   ;; ±Infinity, NaN, or values whose sum might overflow
 *   bv, bi = lane 0; for lanes 1…3: (v, i) replaces (bv, bi) when v > bv or (v = bv and i < bi)
 *   return bi)
 */
function argmaxBody(): number[] {
  const lane = (l: number) => [
    ...op.get(XBEST), ...op.lane(l), ...op.set(XVAL), ...op.get(XIDX), ...op.i32lane(l), ...op.set(XI),
    ...op.get(XVAL), ...op.get(XBV), ...op.f32gt, ...op.get(XVAL), ...op.get(XBV), ...op.f32eq, ...op.get(XI), ...op.get(XBI), ...op.ltS, ...op.and, ...op.or, // replace?
    ...op.set(XJ), // (j is free now) the condition, used twice
    ...op.get(XVAL), ...op.get(XBV), ...op.get(XJ), ...op.select, ...op.set(XBV),
    ...op.get(XI), ...op.get(XBI), ...op.get(XJ), ...op.select, ...op.set(XBI),
  ];
  return [
    ...splatF(-Infinity), ...op.set(XBEST), ...op.v128i32(0, 1, 2, 3), ...op.set(XCUR), ...op.i32(0), ...op.set(XJ),
    ...op.block, ...op.loop,
    ...op.get(XJ), ...op.get(XN), ...op.geS, ...op.brIf(1),
    ...at(XP, XJ), ...op.v128load, ...op.set(XX),
    ...op.get(XX), ...op.get(XBEST), ...op.f32x4gt, ...op.set(XMORE),
    ...op.get(XX), ...op.get(XBEST), ...op.get(XMORE), ...op.bitselect, ...op.set(XBEST),
    ...op.get(XCUR), ...op.get(XIDX), ...op.get(XMORE), ...op.bitselect, ...op.set(XIDX),
    ...op.get(XBAD), ...op.get(XX), ...op.f32x4abs, ...op.f32x4max, ...op.set(XBAD), // the largest magnitude per lane (NaN once any lane sees one)
    ...op.get(XCUR), ...op.i32(4), ...op.i32x4splat, ...op.i32x4add, ...op.set(XCUR),
    ...bump(XJ, op.i32(4)), ...op.br(0),
    ...op.end, ...op.end,
    ...op.get(XBAD), ...op.get(XLIMIT), ...op.splat, ...op.f32x4ge, ...op.get(XBAD), ...op.get(XBAD), ...op.f32x4ne, ...op.v128or, ...op.anyTrue, ...op.if, ...op.i32(-1), ...op.return, ...op.end,
    ...op.get(XBEST), ...op.lane(0), ...op.set(XBV), ...op.get(XIDX), ...op.i32lane(0), ...op.set(XBI),
    ...lane(1), ...lane(2), ...lane(3),
    ...op.get(XBI),
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
  const functions: [string, number, number[]][] = [ // name, type, body
    ['scores', 0, body(scoresBody())],
    ['weighted', 0, body(weightedBody())],
    ['softmax', 1, body(softmaxBody(), SOFTMAX_LOCALS)],
    ['swiglu', 2, body(swigluBody(), SWIGLU_LOCALS)],
    ...[1, 2, 3, 4].map((R): [string, number, number[]] => [`matmul${R}`, 0, body(matmulBody(R), MATMUL_LOCALS)]),
    ['attend', 3, body(attendBody(), ATTEND_LOCALS)],
    ['argmax', 4, body(argmaxBody(), ARGMAX_LOCALS)],
  ];
  bytesCache = new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // \0asm, version 1
    ...section(1, vec([funcType(6), [0x60, ...vec([[I32], [I32]]), ...vec([[F32]])], funcType(4), funcType(10), [0x60, ...vec([[I32], [I32], [F32]]), ...vec([[I32]])]])),
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, ...leb(1)]])), // memory, min 1 page, no max
    ...section(3, vec(functions.map(([, type]) => [type]))),
    ...section(7, vec(functions.map(([n], i) => [...name(n), 0x00, i]))),
    ...section(10, vec(functions.map(([, , code]) => code))),
  ]);
  return bytesCache;
}
