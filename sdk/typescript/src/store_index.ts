/**
 * Semantic search on the caller's side: which texts of an item are embedded
 * (field paths in LangGraph's syntax) and the embedding model that turns
 * them into vectors. The service never embeds anything; it stores the
 * vectors a put sends and ranks a search by the query's vector.
 *
 *     const store = new Client({ store: { index: {
 *       dims: 1536,
 *       embeddings: new OpenAIEmbeddings({ model: "text-embedding-3-small" }),
 *       fields: ["text", "memory.summary"],          // default ["$"]: the whole value
 *     } } }).store;
 *
 * Paths: `a.b` (nested fields), `a[0]`, `a[-1]`, `a[*]` (every element),
 * `a.*` (every value), `{a,b.c}` (several fields) and `$` (the whole value;
 * `$.a` is `a`).
 * A string is embedded as it is, a number or boolean as its text, an
 * object or array as its JSON; null and missing fields give nothing. A path
 * that gives several texts makes one vector each, named `path.0`,
 * `path.1`, ... (at most 64 vectors per item).
 */

/** The part of LangChain's `Embeddings` the store uses (any object with
 * these two methods will do, e.g. `new OpenAIEmbeddings()`). */
export interface StoreEmbeddings {
  embedDocuments(texts: string[]): Promise<number[][]>;
  embedQuery(text: string): Promise<number[]>;
}

/** A function that embeds texts, one vector per text, in order. */
export type EmbedFunction = (texts: string[]) => number[][] | Promise<number[][]>;

/**
 * What makes items searchable by meaning, as langgraphjs's `IndexConfig`
 * (`embeddings`) or LangGraph Python's `index` (`embed`). Give one of
 * `embeddings` and `embed`.
 */
export interface StoreIndexConfig {
  /** The length of the vectors the model makes; each vector is checked. */
  dims: number;
  /** A LangChain embeddings model. */
  embeddings?: StoreEmbeddings;
  /** An embedding function, or a LangChain embeddings model. */
  embed?: EmbedFunction | StoreEmbeddings;
  /** The fields embedded when a put does not name its own; default `["$"]`. */
  fields?: string[];
}

/** The largest vector the service stores (pgvector's limit). */
const MAX_DIMS = 16_000;

/** One step of a field path. */
type Step =
  | { kind: "field"; name: string }
  | { kind: "index"; index: number | "*" }
  | { kind: "any" }
  | { kind: "fields"; paths: Step[][] };

/** The steps of a field path; throws RangeError for a malformed one. */
export function parsePath(path: string): Step[] {
  if (path === "$" || path === "") return [];
  if (path.startsWith("$.")) return parsePath(path.slice(2));
  const steps: Step[] = [];
  let name = "";
  const endName = () => {
    if (name === "*") steps.push({ kind: "any" });
    else if (name !== "") steps.push({ kind: "field", name });
    name = "";
  };
  for (let i = 0; i < path.length; i++) {
    const char = path[i];
    if (char === ".") {
      endName();
    } else if (char === "[" || char === "{") {
      endName();
      const close = char === "[" ? "]" : "}";
      const end = closing(path, i, char, close);
      const inside = path.slice(i + 1, end);
      if (char === "[") steps.push({ kind: "index", index: parseIndex(inside, path) });
      else steps.push({ kind: "fields", paths: splitFields(inside).map(parsePath) });
      i = end;
    } else if (char === "]" || char === "}") {
      throw new RangeError(`field path ${JSON.stringify(path)} has an unmatched ${JSON.stringify(char)}`);
    } else {
      name += char;
    }
  }
  endName();
  return steps;
}

/** The index of the bracket that closes the one at `start`. */
function closing(path: string, start: number, open: string, close: string): number {
  let depth = 0;
  for (let i = start; i < path.length; i++) {
    if (path[i] === open) depth++;
    else if (path[i] === close && --depth === 0) return i;
  }
  throw new RangeError(`field path ${JSON.stringify(path)} has an unclosed ${JSON.stringify(open)}`);
}

function parseIndex(text: string, path: string): number | "*" {
  const trimmed = text.trim();
  if (trimmed === "*") return "*";
  if (!/^-?\d+$/.test(trimmed)) {
    throw new RangeError(`field path ${JSON.stringify(path)}: [${text}] is not an index or [*]`);
  }
  return Number(trimmed);
}

/** The comma-separated paths of `{a,b.c}`, commas inside brackets kept. */
function splitFields(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let part = "";
  for (const char of text) {
    if (char === "[" || char === "{") depth++;
    if (char === "]" || char === "}") depth--;
    if (char === "," && depth === 0) {
      parts.push(part.trim());
      part = "";
    } else {
      part += char;
    }
  }
  parts.push(part.trim());
  return parts.filter((p) => p !== "");
}

/** The text an embedding model gets for a value found at a path. */
function leafText(value: unknown): string[] {
  if (value === null || value === undefined) return [];
  if (typeof value === "string") return [value];
  if (typeof value === "number" || typeof value === "boolean") return [String(value)];
  return [JSON.stringify(value)];
}

function walk(value: unknown, steps: readonly Step[]): string[] {
  if (steps.length === 0) return leafText(value);
  const [step, ...rest] = steps;
  switch (step.kind) {
    case "field":
      if (value === null || typeof value !== "object" || Array.isArray(value)) return [];
      if (!Object.hasOwn(value, step.name)) return [];
      return walk((value as Record<string, unknown>)[step.name], rest);
    case "index": {
      if (!Array.isArray(value)) return [];
      if (step.index === "*") return value.flatMap((item) => walk(item, rest));
      const at = step.index < 0 ? value.length + step.index : step.index;
      return at >= 0 && at < value.length ? walk(value[at], rest) : [];
    }
    case "any":
      if (value === null || typeof value !== "object") return [];
      return Object.values(value).flatMap((item) => walk(item, rest));
    case "fields":
      return step.paths.flatMap((path) => walk(value, [...path, ...rest]));
  }
}

/** The texts at a field path of a value (see the module comment). */
export function textsAtPath(value: unknown, path: string): string[] {
  return walk(value, parsePath(path));
}

/** One item's texts to embed, by vector path. */
export function textsToEmbed(value: unknown, fields: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (const field of fields) {
    const texts = textsAtPath(value, field);
    if (texts.length === 1) out.push([field, texts[0]]);
    else texts.forEach((text, i) => out.push([`${field}.${i}`, text]));
  }
  return out;
}

/** An index config checked, with its model behind two calls. */
export class Embedder {
  readonly dims: number;
  readonly fields: readonly string[];
  private readonly model: StoreEmbeddings | EmbedFunction;

  constructor(config: StoreIndexConfig) {
    const { dims, embeddings, embed, fields = ["$"] } = config;
    if (!Number.isInteger(dims) || dims < 1 || dims > MAX_DIMS) {
      throw new RangeError(`index.dims must be an integer from 1 to ${MAX_DIMS}: ${dims}`);
    }
    if ((embeddings === undefined) === (embed === undefined)) {
      throw new TypeError("an index config takes one of `embeddings` and `embed`");
    }
    const model = embeddings ?? embed!;
    if (typeof model !== "function" && typeof model?.embedDocuments !== "function") {
      throw new TypeError("index.embed must be a function or have embedDocuments and embedQuery");
    }
    for (const field of fields) parsePath(field);
    this.dims = dims;
    this.fields = [...fields];
    this.model = model;
  }

  /** The vectors of `texts`, in order. */
  async documents(texts: string[]): Promise<number[][]> {
    if (texts.length === 0) return [];
    const vectors =
      typeof this.model === "function"
        ? await this.model(texts)
        : await this.model.embedDocuments(texts);
    return this.checked(vectors, texts.length);
  }

  /** The vector of each query. */
  async queries(queries: string[]): Promise<number[][]> {
    if (queries.length === 0) return [];
    const model = this.model;
    const vectors =
      typeof model === "function"
        ? await model(queries)
        : await Promise.all(queries.map((query) => model.embedQuery(query)));
    return this.checked(vectors, queries.length);
  }

  private checked(vectors: number[][], count: number): number[][] {
    if (!Array.isArray(vectors) || vectors.length !== count) {
      throw new TypeError(`the embedding model returned ${vectors?.length} vectors for ${count} texts`);
    }
    for (const vector of vectors) {
      if (!Array.isArray(vector) || vector.length !== this.dims) {
        throw new RangeError(
          `the embedding model returned a vector of ${vector?.length} numbers; index.dims is ${this.dims}`,
        );
      }
      if (!vector.every(Number.isFinite)) {
        throw new RangeError("the embedding model returned a vector with a number that is not finite");
      }
    }
    return vectors;
  }
}
