/**
 * Hand-written story openings for the self-distillation corpus of `npm run train:heads`
 * (TinyStories-like: children's stories, simple words). The last {@link HELD_OUT_OPENINGS} are
 * never used for training: they are the held-out prompts τ is measured on
 * (tools/heads/measure.ts). None of the training openings is a prefix of a held-out prompt or of
 * the bench's hand-written prompts (tools/bench_model.ts), so the corpus never continues those.
 */

/** Training openings, then (the last {@link HELD_OUT_OPENINGS}) the held-out prompts. */
export const STORY_OPENINGS: readonly string[] = [
  'Once upon a time',
  'One day, a little boy',
  'Tom and his dog',
  'There was a big tree',
  'The sun was shining and',
  'Mom said to Sue',
  'A small cat lived',
  'In a little house by the sea',
  'Ben wanted to fly',
  'The princess looked at',
  'It was a cold winter morning',
  'Lily found a shiny stone',
  'The old man had a garden',
  'A bird sat on the fence',
  'Sam and Mia went to the park',
  'The little train was sad',
  'Max liked to eat apples',
  'Every night, the moon',
  'Anna had a red hat',
  'The bunny hopped into the forest',
  'A friendly dragon',
  'Dad made a big cake',
  'The boat was very small',
  'Jack saw a frog',
  'Tim and Sue were best friends',
  'One morning, the farmer',
  'A little girl named Amy',
  'The dog barked at the mailman',
  'Mia loved to paint',
  'There once was a silly goose',
  'The children played in the snow',
  'Bob the bear woke up',
  'A big storm came to the town',
  'Kate wanted a new dress',
  'The duck swam in the pond',
  'Leo found a box in the attic',
  'It was Sara\'s birthday',
  'The teacher said to the class',
  'A kind old lady',
  'Two friends went on an adventure',
  'Tommy did not want to sleep',
  'The flowers in the garden',
  'One day, Lily and Ben',
  'A lion lived in the jungle',
  'The car was stuck in the mud',
  'Jenny lost her favorite doll',
  'The monkey climbed up the tree',
  'Once, a little star',
  'Zoe and her cat',
  'The ice cream truck came',
  'Mom and Dad took the kids',
  'A little ant carried a leaf',
  'The snowman smiled',
  'Joe had a big blue kite',
  'The farmer had a cow named',
  'It was a hot summer day',
  'The owl said hello to',
  'Emma wanted to help her mom',
  'A spider made a web',
  'The puppy was lost',
  'In the park, there was a swing',
  'Tim was scared of the dark',
  'The girl picked a flower',
  'A little bird could not fly',
  'Once, there was a brave knight',
  'Mark liked to play with blocks',
  'The rabbit and the turtle',
  'Lucy went to the store',
  'The sky was dark and',
  'A big fish jumped out of',
  'Peter and his sister',
  'The baby laughed when',
  'One day, a small boy named Sam',
  'There was a magic tree',
  'The cat chased the mouse',
  'Mom gave Lily a hug',
  'Ben and Anna built a sandcastle',
  'The little car went fast',
  'A tall giraffe',
  'The children sang a song',
  'Molly had a pet fish',
  'The wind blew the leaves',
  'A happy frog jumped',
  'Sue and Tom were playing',
  'In the forest, a little fox',
  'Grandpa told a story about',
  'The elephant was very big',
  'Tim saw a butterfly',
  'One day, the sun did not come out',
  'Jill wanted to be a doctor',
  'The pig rolled in the mud',
  'A little boat sailed on the lake',
  'Sally had a secret',
  'The kids went to the zoo',
  'Once, a girl named Kim',
  'The horse ran across the field',
  'Daddy read a book to',
  'There was a little red house',
  'The chicken laid an egg',
  'Amy and her friend played with',
  'It was time for bed, but',
  'The bee buzzed around the',
  'A shy turtle',
  'Billy found a coin on the ground',
  'The queen had a golden crown',
  'Rain fell on the roof',
  'The boys played ball in the yard',
  'A little mouse was hungry',
  'Lily and Tom saw a rainbow',
  'The sheep said baa',
  'Nina liked to dance',
  'One day, a big truck',
  'The squirrel hid a nut',
  'A little bear wanted honey',
  'Mom baked bread in the oven',
  'Tim and his friends played tag',
  'The stars were shining',
  'A boy found a map',
  'The little duckling followed',
  'Ellie had a toy bear',
  'The clown made everyone laugh',
  'Ben climbed the hill',
  'A cow lived on a farm',
  'The girl and the boy shared',
  // held out (the last HELD_OUT_OPENINGS):
  'Once there was a happy dog named Spot',
  'Sara went to the beach with her mom',
  'The little fish swam',
  'A boy named Tim had a toy car',
  'One sunny day, a girl',
  'The king was very angry',
  'Lucy and her brother',
  'The big bear was hungry',
];

/** How many of the last {@link STORY_OPENINGS} are held out. */
export const HELD_OUT_OPENINGS = 8;

/** What the openings need of a tokenizer: llama2.c's (BOS first when encoding). */
interface StoryTokenizer {
  encode(text: string): number[];
  decode(ids: number[]): string;
  readonly bosId: number;
  readonly vocabSize: number;
}

/** Vocabulary openings: BOS and one word piece of the tokenizer that starts with a space and is letters (" girl", " ball", …). */
export function vocabularyOpenings(tokenizer: StoryTokenizer): number[][] {
  const out: number[][] = [];
  for (let id = 3; id < tokenizer.vocabSize; id++) {
    const text = tokenizer.decode([id]); // no BOS before it: the piece keeps its leading space
    if (/^ [A-Za-z]{3,}$/.test(text)) out.push([tokenizer.bosId, id]);
  }
  return out;
}

/**
 * The self-distillation openings of a llama2.c story model (`trainDraftHeads`' `openings`): the
 * training story openings (BOS first), then the vocabulary words — never the held-out ones.
 */
export function storyOpenings(tokenizer: StoryTokenizer): number[][] {
  return [...STORY_OPENINGS.slice(0, STORY_OPENINGS.length - HELD_OUT_OPENINGS).map((t) => tokenizer.encode(t)), ...vocabularyOpenings(tokenizer)];
}

/**
 * Short general-purpose openings for a Hugging Face model (web text, explanations, code, lists), in
 * the same form as {@link STORY_OPENINGS}: the last {@link HELD_OUT_GENERIC} are the held-out
 * prompts τ is measured on, and no training opening is a prefix of one of them.
 */
export const GENERIC_OPENINGS: readonly string[] = [
  'In',
  'Once upon a time',
  'The history of',
  'One of the most important',
  'Photosynthesis is the process',
  'How to make',
  'The best way to learn',
  'Here is a list of',
  'In this article, we',
  'The capital of France is',
  'Water boils at',
  'def main():\n',
  'import numpy as np\n',
  'function add(a, b) {\n',
  '# Introduction\n\n',
  'Q: What is',
  'Step 1:',
  'The weather today',
  'Scientists have discovered',
  'According to the report,',
  'My favourite book is',
  'The city was founded in',
  'To install the package, run',
  'Dear Sir or Madam,',
  'The main reason why',
  'A computer is a machine that',
  'There are three types of',
  'The following example shows',
  'In mathematics, a prime number',
  'The human body has',
  'Climate change is',
  'Once you have finished,',
  'The results of the study',
  'for (let i = 0; i < n; i++) {\n',
  'class Person:\n',
  // held out (the last HELD_OUT_GENERIC):
  'Gravity is the force that',
  'My grandmother used to say',
  'A good breakfast should include',
  'SELECT name FROM users WHERE',
  'The river flows through',
  'Learning a new language',
];

/** How many of the last {@link GENERIC_OPENINGS} are held out. */
export const HELD_OUT_GENERIC = 6;

/** The self-distillation openings of a Hugging Face model: the training generic openings, encoded as a prompt (the tokenizer's special tokens included). */
export function genericOpenings(tokenizer: { encode(text: string): number[] }): number[][] {
  return GENERIC_OPENINGS.slice(0, GENERIC_OPENINGS.length - HELD_OUT_GENERIC).map((t) => tokenizer.encode(t)).filter((ids) => ids.length > 0);
}

/** The held-out generic prompts (never corpus openings). */
export function heldOutGenericPrompts(): readonly string[] {
  return GENERIC_OPENINGS.slice(GENERIC_OPENINGS.length - HELD_OUT_GENERIC);
}
