/**
 * stories260K end to end in the Hugging Face layout with a tokenizer.json: a tokenizer.json
 * equivalent to tok512.bin (written by tests/helpers/tok512_json.ts from the file's pieces and
 * scores) encodes exactly as `Llama2cTokenizer` over a spread of texts, and the HF-layout
 * checkpoint, prompted through it, greedy-decodes run.c's reference text and stops where run.c
 * stops (at the BOS that starts the next story).
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode } from '../../src/index.js';
import { CachedTransformer, loadHfLlama, loadHfTokenizer, Llama2cTokenizer } from '../../src/models/index.js';
import { parseLlama2c } from '../../src/models/llama2c.js';
import { useCpu } from '../helpers/backend.js';
import { readStories, storiesAvailable, storiesReference, STORIES_DIR, toHfLayout, writeSafetensors } from '../helpers/stories.js';
import { tokenizerJsonFromLlama2c } from '../helpers/tok512_json.js';

const LLAMA2_TOKENIZER = join(STORIES_DIR, '../../tokenizers/llama2');

const TEXTS = [
  'Once upon a time, there was a little girl named Lily.',
  'Tom said, "Can I play with your ball?"\nMom smiled.',
  '  two spaces, a tab\tand\n\nnewlines  ',
  'Zebras quickly jumped over 1234567890 lazy dogs!!',
  'naïve café — 日本語 and 😀 emoji',
  'supercalifragilisticexpialidocious antidisestablishmentarianism',
];

describe.skipIf(!storiesAvailable('tests/models/hf_tok512'))('stories260K with a tokenizer.json equivalent to tok512', () => {
  beforeAll(useCpu);

  it('encodes as Llama2cTokenizer does, and decodes back', async () => {
    const bytes = readStories('tokenizer');
    const llama2c = Llama2cTokenizer.fromBytes(bytes, 512);
    const hf = await loadHfTokenizer(tokenizerJsonFromLlama2c(bytes, 512, LLAMA2_TOKENIZER));
    for (const text of TEXTS) {
      expect(hf.encode(text), text).toEqual(llama2c.encode(text, { bos: true }));
      expect(hf.encode(text, { addSpecialTokens: false }), text).toEqual(llama2c.encode(text, { bos: false }));
      expect(hf.decode(hf.encode(text)), text).toBe(llama2c.decode(llama2c.encode(text)));
    }
  });

  it('the HF-layout checkpoint, prompted through the tokenizer.json, decodes run.c’s text and stops where run.c stops', async () => {
    const ref = storiesReference();
    const bytes = readStories('tokenizer');
    const tokenizer = await loadHfTokenizer(tokenizerJsonFromLlama2c(bytes, 512, LLAMA2_TOKENIZER));
    const prompt = tokenizer.encode(ref.prompt);
    expect(prompt).toEqual(ref.promptIds);
    const layout = toHfLayout(parseLlama2c(readStories('checkpoint')), 'F32');
    const { model, stopTokens } = await loadHfLlama({ config: layout.config, safetensors: writeSafetensors(layout.tensors), generationConfig: { bos_token_id: 1, eos_token_id: [1, 2] } });
    expect(stopTokens).toEqual([1, 2]);
    const cached = new CachedTransformer(model);
    const greedy = await greedyDecode(cached, prompt, { maxNewTokens: 500 });
    expect(greedy.finishReason).toBe('stop');
    expect(greedy.tokens.at(-1)).toBe(1); // run.c's `if (next == 1) break`
    const text = tokenizer.decode([...prompt, ...greedy.tokens]);
    expect(text.startsWith(ref.greedyText)).toBe(true);
    cached.truncate(0);
    expect((await speculativeDecode(cached, prompt, { maxNewTokens: 500 })).tokens).toEqual(greedy.tokens);
    cached.dispose();
    model.dispose();
  });
});
