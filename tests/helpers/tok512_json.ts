/**
 * A Hugging Face `tokenizer.json` equivalent to a llama2.c tokenizer file (stories260K's
 * tok512.bin), written by the tests: the pieces become a BPE vocabulary (llama2.c stores `▁` as a
 * space), and every split of a piece into two pieces becomes a merge, ranked by the merged
 * piece's score (higher first) — llama2.c's encoder merges the adjacent pair whose result scores
 * highest, HF's BPE the pair of lowest rank, so the two agree. The rest of the file (normalizer,
 * byte fallback, decoder, `<s>` post-processor) is Llama 2's own, read from shared/tokenizers.
 *
 * llama2.c file: int32 max_token_length, then per token a float32 score, an int32 length and the
 * piece's UTF-8 bytes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** run.c's reading of a llama2.c tokenizer file of `vocabSize` tokens: its max_token_length, pieces, scores, and the byte offset after the last token. */
export function readLlama2cPieces(bytes: Uint8Array, vocabSize: number): { maxTokenLength: number; pieces: string[]; scores: number[]; end: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder();
  const pieces: string[] = [];
  const scores: number[] = [];
  let at = 4;
  for (let i = 0; i < vocabSize; i++) {
    scores.push(view.getFloat32(at, true));
    const length = view.getInt32(at + 4, true);
    pieces.push(decoder.decode(bytes.subarray(at + 8, at + 8 + length)));
    at += 8 + length;
  }
  return { maxTokenLength: view.getInt32(0, true), pieces, scores, end: at };
}

/** The tokenizer.json (parsed) equivalent to llama2.c tokenizer `bytes`; `llama2Dir` holds Llama 2's tokenizer.json. */
export function tokenizerJsonFromLlama2c(bytes: Uint8Array, vocabSize: number, llama2Dir: string): Record<string, unknown> {
  const { pieces, scores } = readLlama2cPieces(bytes, vocabSize);
  const template = JSON.parse(readFileSync(join(llama2Dir, 'tokenizer.json'), 'utf8')) as Record<string, unknown> & { model: Record<string, unknown> };
  const names = pieces.map((p, id) => (id < 3 ? ['<unk>', '<s>', '</s>'][id]! : p.replaceAll(' ', '▁')));
  const vocab: Record<string, number> = {};
  names.forEach((name, id) => (vocab[name] = id));
  const merges: Array<{ left: string; right: string; score: number; id: number }> = [];
  names.forEach((name, id) => {
    if (id < 3 || /^<0x[0-9A-F]{2}>$/.test(name)) return; // specials and byte tokens are never merged into
    const chars = [...name];
    for (let cut = 1; cut < chars.length; cut++) {
      const left = chars.slice(0, cut).join('');
      const right = chars.slice(cut).join('');
      if (vocab[left] !== undefined && vocab[right] !== undefined) merges.push({ left, right, score: scores[id]!, id });
    }
  });
  merges.sort((a, b) => b.score - a.score || a.id - b.id || vocab[a.left]! - vocab[b.left]!);
  return {
    ...template,
    added_tokens: (template['added_tokens'] as unknown[]).slice(0, 3),
    model: { ...template.model, vocab, merges: merges.map((m) => `${m.left} ${m.right}`) },
  };
}
