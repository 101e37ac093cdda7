/**
 * A TypeDoc plugin (typedoc.json "plugin"): groups the API reference by task instead of by kind.
 * Every top-level export of the two entry points gets a `@group` from the folder or file that
 * declares it, so the rule lives in one place and a new export lands in its task's group without a
 * tag. An explicit `@group` tag in the source wins.
 *
 *   src/layers/                                      → Layers
 *   src/training/                                    → Training
 *   src/decoding/                                    → Decoding
 *   src/models/{transformer,config,cached}, src/kernels/ → Models
 *   src/models/{llama2c,hf_*,tokenizer*}             → Loaders (checkpoints and their tokenizers)
 *   src/models/{draft_heads,train_heads/,adapter}    → Heads (trained draft heads: file, training, adaptation)
 */
import { Comment, CommentTag, Converter, ReflectionKind } from 'typedoc';

/** The task of a declaring file (a path relative to the repository), or undefined. */
export function groupOf(file) {
  const rules = [
    [/^src\/layers\//, 'Layers'],
    [/^src\/training\//, 'Training'],
    [/^src\/decoding\//, 'Decoding'],
    [/^src\/models\/(draft_heads|adapter)\.ts$|^src\/models\/train_heads\//, 'Heads'],
    [/^src\/models\/(llama2c|llama2c_tokenizer|hf_[a-z_]+|tokenizer|tokenizer_interface|read_bytes)\.ts$/, 'Loaders'],
    [/^src\/models\/|^src\/kernels\//, 'Models'],
  ];
  return rules.find(([pattern]) => pattern.test(file))?.[1];
}

/** The order of the groups on each page, in the order a reader needs them. */
export const GROUP_ORDER = ['Layers', 'Training', 'Decoding', 'Models', 'Loaders', 'Heads', '*'];

/** @param {import('typedoc').Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    const project = context.project;
    for (const module of project.getReflectionsByKind(ReflectionKind.Module)) {
      for (const reflection of module.children ?? []) {
        const comments = [reflection.comment, ...(reflection.signatures ?? []).map((s) => s.comment)].filter(Boolean);
        if (comments.some((c) => c.getTag('@group'))) continue;
        const file = project.getSymbolIdFromReflection(reflection)?.fileName;
        const relative = file === undefined ? undefined : file.slice(file.lastIndexOf('/src/') + 1);
        const group = relative === undefined ? undefined : groupOf(relative);
        if (group === undefined) continue;
        reflection.comment ??= new Comment();
        reflection.comment.blockTags.push(new CommentTag('@group', [{ kind: 'text', text: group }]));
      }
    }
  });
}
