/**
 * What a decode hands back: the chunks it streams ({@link TokenChunk}), the result it resolves
 * to ({@link DecodeResult}) and its statistics (`DecodeStats`). Plain data, no tensors.
 */

/** A chunk of tokens committed by one decoding step (one model forward). */
export interface TokenChunk {
  /** The committed token ids, in order. */
  tokens: number[];
  /**
   * How each token was produced: `0` = the verifier's own token (offset 0 — in `greedyDecode`
   * every token), `j ≥ 1` = a draft from offset `j` (accepted by verification in
   * `speculativeDecode`, unverified in `blockwiseDecode`).
   */
  sources: number[];
  /** 0-based index of the model forward that committed this chunk (0 = the prompt's forward). */
  step: number;
  /** The drafter whose proposal this step verified (`speculativeDecode`; absent when nothing was proposed). */
  drafter?: string;
  /**
   * Drafts this step counts in the statistics, from offsets 1 … `drafted` (see
   * `stats`): the drafts it verified (`blockwiseDecode`: emitted), or, when decoding
   * ended inside the step, the drafts it committed. A live view of acceptance adds these up.
   */
  drafted: number;
  /**
   * The draft tree this step verified — present only when decoding with `tree` (on every step of
   * such a decode; the prompt's step has an empty tree), absent on chain steps. Nodes are listed
   * parents first; the root, the last committed token before this step, is not a node.
   *
   * When the step commits everything it produced, `tokens` is the accepted nodes' tokens followed
   * by the verifier's own token; when a stop token, `maxNewTokens` or the context cuts the step
   * short, `tokens` is a prefix of that (`accepted` still says what verification kept).
   */
  tree?: {
    /** Per node, its draft token. */
    tokens: number[];
    /** Per node, the index of its parent node, or −1 for a child of the root. */
    parents: number[];
    /** The accepted root-to-node path, as node indices from the root down (empty: no draft kept). */
    accepted: number[];
  };
}

/** Why decoding ended. `'context'`: the model's context (`maxLength`) is full. @inline */
export type FinishReason = 'length' | 'stop' | 'context';

/**
 * Statistics of one decode. τ (`meanAcceptedLength`) follows vLLM and EAGLE: tokens committed
 * per verification forward, the bonus/correction token included — so greedy decoding has τ = 1
 * and a speculative step that keeps all d drafts commits d + 1. The prompt's forward commits
 * one token and counts as a forward.
 *
 * Draft counts cover committed work only: when a stop token, `maxNewTokens` or the context
 * ends decoding inside a step, that step counts just the drafts it committed (as drafted and
 * kept); the drafts after the cut are not counted at all. A step that commits everything it
 * produced counts every draft it verified (`blockwiseDecode`: emitted), kept or not.
 * @inline
 */
export interface DecodeStats {
  /** Model forwards (calls to `model.forward`), the prompt's included. */
  forwards: number;
  /** Tokens committed (= `tokens.length` of the result). */
  tokens: number;
  /** τ = tokens / forwards. */
  meanAcceptedLength: number;
  /** Drafted tokens that went through verification (see the note on cut-off steps above). */
  drafted: number;
  /** Drafted tokens that verification kept and that were committed. */
  accepted: number;
  /** Per offset j = 1 … k-1 (index j - 1): drafts counted in `drafted`. */
  draftedPerOffset: number[];
  /** Per offset j = 1 … k-1 (index j - 1): drafts counted in `accepted`. */
  acceptedPerOffset: number[];
  /**
   * Per offset j = 1 … k-1 (index j - 1): `acceptedPerOffset[j-1] / draftedPerOffset[j-1]`, the
   * share of steps drafting offset j in which its draft was kept (which requires offsets
   * 1 … j-1 kept too), as vLLM reports per position. `NaN` where offset j never drafted.
   */
  acceptanceRates: number[];
  /**
   * Draft tokens fed to the model, every node of a draft tree counted (a chain: its drafts, also
   * those after a cut; `blockwiseDecode`: the unverified drafts it emitted). With `tree`,
   * `draftNodes / forwards` is the mean tree size, and `draftedPerOffset[d − 1]` counts the steps
   * whose tree reached depth d (`acceptanceRates` are then per depth). Set by every decoder of
   * this library (optional for stats made elsewhere).
   */
  draftNodes?: number;
  /**
   * Per drafter (by name; `speculativeDecode` only): steps that verified its proposal, tokens it
   * proposed there (a tree's nodes), and drafts of its that were accepted and committed.
   */
  drafters?: Record<string, DrafterStats>;
  /** Milliseconds from the call to the end, validation and prompt included. */
  wallTimeMs: number;
  /** Milliseconds from the call until the first token was committed. */
  timeToFirstTokenMs: number;
  /** tokens / wall time, in tokens per second. */
  tokensPerSecond: number;
}

/** One drafter's share of a decode (see {@link DecodeStats.drafters}), in llama.cpp's and vLLM's terms. @inline */
export interface DrafterStats {
  /** Steps that verified this drafter's proposal. */
  steps: number;
  /** Tokens it proposed in those steps. */
  drafted: number;
  /** Of those, drafts accepted and committed. */
  accepted: number;
}

/** What every decoder resolves to. */
export interface DecodeResult {
  /** The new token ids (the prompt excluded; a stop token, if hit, included last). */
  tokens: number[];
  /** Per token, how it was produced (see {@link TokenChunk.sources}). */
  sources: number[];
  /** Why decoding ended. */
  finishReason: FinishReason;
  /** Counts and timings. */
  stats: DecodeStats;
}
