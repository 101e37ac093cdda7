/**
 * Checks of JSON text from files (a safetensors header, config.json, a draft-heads manifest)
 * that `JSON.parse` cannot make: `checkJsonText` scans the text once, without recursion, and
 * refuses arrays and objects nested deeper than {@link MAX_JSON_DEPTH} (no real file of these
 * formats nests deeper than 4 levels; deeper ones exhaust the stack of whatever renders them)
 * and, on request, a key repeated in one object (`JSON.parse` silently keeps the last). Errors
 * name the file and the field.
 */

/** Deepest nesting of arrays and objects accepted. */
export const MAX_JSON_DEPTH = 64;

/** Path components of a field shown in an error before it is cut with `…`. */
const SHOWN_COMPONENTS = 8;

/** One open array or object: the member being read (an object's key, an array's index). */
interface Frame {
  isObject: boolean;
  key: string;
  index: number;
  expectKey: boolean;
  /** The keys seen so far (objects, when keys must be unique). */
  keys: Set<string> | null;
}

/** Options of {@link checkJsonText}. */
export interface JsonTextChecks {
  /** Refuse an object that names a key twice. Default false. */
  uniqueKeys?: boolean;
}

/** `a.b["c d"][0]` of a path: identifier keys with a dot, others quoted, indices in brackets. */
function renderPath(root: string, frames: readonly Frame[]): string {
  const parts = frames.map((f) => (!f.isObject ? `[${f.index}]` : /^[A-Za-z_$][\w$]*$/.test(f.key) ? `.${f.key}` : `[${JSON.stringify(f.key)}]`));
  const shown = parts.slice(0, SHOWN_COMPONENTS).join('') + (parts.length > SHOWN_COMPONENTS ? '…' : '');
  const path = `${root}${shown}`;
  return path.startsWith('.') ? path.slice(1) : path || 'the document';
}

/** Index just after the closing quote of the string starting at `text[start]` (a `"`). */
function stringEnd(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
  return i + 1;
}

/** The value of a JSON string literal (its raw text, quotes included), or the raw text when malformed. */
function decodeString(raw: string): string {
  try {
    return JSON.parse(raw) as string;
  } catch {
    return raw.slice(1, -1); // malformed: JSON.parse reports it later
  }
}

/**
 * Throws unless every array and object of the JSON `text` is nested at most
 * {@link MAX_JSON_DEPTH} levels deep (and, with `uniqueKeys`, no object repeats a key).
 * Malformed JSON is left for `JSON.parse` to report.
 * @param text The JSON text.
 * @param where Error prefix naming the caller and the file, e.g. `loadHfLlama: files.config`.
 * @param root Name of the document in field paths (`header`, `manifest`; `''` for none).
 * @param checks Which further checks to make.
 */
export function checkJsonText(text: string, where: string, root: string, checks: JsonTextChecks = {}): void {
  const frames: Frame[] = [];
  for (let i = 0; i < text.length; ) {
    const c = text[i]!;
    const top = frames[frames.length - 1];
    if (c === '"') {
      const end = stringEnd(text, i);
      if (top?.isObject && top.expectKey) {
        top.key = decodeString(text.slice(i, end));
        if (top.keys?.has(top.key)) {
          const path = renderPath(root, frames.slice(0, -1));
          throw new Error(`${where}: ${path} must name each key once, but got ${JSON.stringify(top.key)} twice.`);
        }
        top.keys?.add(top.key);
      }
      i = end;
      continue;
    }
    if (c === '{' || c === '[') {
      if (frames.length >= MAX_JSON_DEPTH) {
        throw new Error(`${where}: ${renderPath(root, frames)} must nest arrays and objects at most ${MAX_JSON_DEPTH} levels deep, but got deeper nesting.`);
      }
      const isObject = c === '{';
      frames.push({ isObject, key: '', index: 0, expectKey: isObject, keys: isObject && checks.uniqueKeys ? new Set() : null });
    } else if (c === '}' || c === ']') frames.pop();
    else if (c === ':' && top?.isObject) top.expectKey = false;
    else if (c === ',' && top !== undefined) {
      if (top.isObject) top.expectKey = true;
      else top.index++;
    }
    i++;
  }
}
