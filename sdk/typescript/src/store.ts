/**
 * Long-term memory: the service's StoreService with langgraphjs `BaseStore`
 * method names. Items are JSON objects under a key in a namespace path
 * (`["users", "u-42", "memories"]`); they outlive threads, so an agent
 * writes a memory in one thread and reads it in any other.
 *
 *     const store = client.store;                      // or getStore() / config.store in a task
 *     await store.put(["users", "u-42"], "food", { likes: "pizza" });
 *     const item = await store.get(["users", "u-42"], "food");   // item.value.likes
 *     const found = await store.search(["users"], { filter: { likes: "pizza" } });
 *     await store.put(["cache"], "k", { v: 1 }, undefined, { ttl: 5 });   // expires in 5 minutes
 *
 * Every call acts in the caller's Cairn namespace (credentials.ts): a client
 * or worker of namespace "team-a" sees only team-a's memories.
 *
 * With an index config (store_index.ts) puts embed the chosen fields here,
 * in the caller's process, and send the vectors; a search with a `query`
 * sends the query's vector and gets the nearest items first, each with its
 * `score` (cosine similarity).
 */

import { createClient, type CallOptions, type Client as RpcClient, type Transport } from "@connectrpc/connect";
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Item as ItemPb, ItemVectorSchema, SearchItem as SearchItemPb } from "./gen/cairn/v1/store_pb.js";
import type {
  GetItemRequestSchema,
  ListNamespacesRequestSchema,
  PutItemRequestSchema,
  SearchItemsRequestSchema,
  StoreOperationSchema,
  StoreResult,
} from "./gen/cairn/v1/store_service_pb.js";
import { StoreService } from "./gen/cairn/v1/store_service_pb.js";
import { fromRpcError } from "./errors.js";
import { Embedder, textsToEmbed, type StoreIndexConfig } from "./store_index.js";
import { normalize } from "./values.js";

export type { EmbedFunction, StoreEmbeddings, StoreIndexConfig } from "./store_index.js";

/** An item of the store, as langgraphjs's `Item`. */
export interface StoreItem {
  /** The path of labels the item lives under. */
  namespace: string[];
  /** Its key, unique in its namespace path. */
  key: string;
  /** The JSON object stored. */
  // langgraphjs's Item.value type, so that fields read without casts.
  value: Record<string, any>;
  /** When it was first put. */
  createdAt: Date;
  /** When it was last put. */
  updatedAt: Date;
  /** When it expires (put with a ttl); unset: never. */
  expiresAt?: Date;
}

/** An item found by `search`, as langgraphjs's `SearchItem`. */
export interface StoreSearchItem extends StoreItem {
  /** Cosine similarity to the query (-1 to 1, higher is nearer); unset
   * without a query, and for items with no vector to compare. */
  score?: number;
}

/** Expiry defaults, as LangGraph's `TTLConfig`. */
export interface StoreTtlConfig {
  /** Minutes an item lives after a put that gives no `ttl`; unset: forever. */
  defaultTtl?: number;
  /** Whether `get` and `search` move an item's expiry to now + its ttl when
   * they do not say. Default true. */
  refreshOnRead?: boolean;
}

/** How a store embeds and expires items, for `Client`, `Worker` and `CairnStore`. */
export interface StoreOptions {
  /** Makes puts embed fields and searches rank by a `query`. */
  index?: StoreIndexConfig;
  ttl?: StoreTtlConfig;
}

export interface StoreGetOptions {
  /** Move the item's expiry to now + its ttl; default `ttl.refreshOnRead` (true). */
  refreshTtl?: boolean;
}

export interface StorePutOptions {
  /** Minutes the item lives (after this put and each refreshing read); null:
   * forever; unset: `ttl.defaultTtl`. At least one second. */
  ttl?: number | null;
}

export interface StoreSearchOptions {
  /** Top-level fields of the value to match: a value, or `{ $eq, $ne, $gt,
   * $gte, $lt, $lte, $in, $nin }` ($in / $nin take an array). */
  filter?: Record<string, unknown>;
  /** At most this many items; default 10, at most 1000. */
  limit?: number;
  /** Items to skip first; default 0. */
  offset?: number;
  /** Text to rank by meaning (needs an index config; ignored without one, as
   * in LangGraph). */
  query?: string;
  /** Move the expiry of the items returned; default `ttl.refreshOnRead` (true). */
  refreshTtl?: boolean;
}

export interface StoreListNamespacesOptions {
  /** Only paths that start with these labels ("*" matches any label). */
  prefix?: string[];
  /** Only paths that end with these labels ("*" matches any label). */
  suffix?: string[];
  /** Cut each path to this many labels (paths that become equal are listed once). */
  maxDepth?: number;
  /** At most this many paths; default 100, at most 1000. */
  limit?: number;
  /** Paths to skip first; default 0. */
  offset?: number;
}

// The operations of `batch`, shaped as langgraphjs's, so that a langgraphjs
// BaseStore passes its own operations through.

export interface StoreGetOperation {
  namespace: string[];
  key: string;
  refreshTtl?: boolean;
}

export interface StorePutOperation {
  namespace: string[];
  key: string;
  /** The value; null deletes the item. */
  value: Record<string, unknown> | null;
  /** The fields to embed; false: none; unset: the index config's. */
  index?: false | string[];
  /** Minutes (see StorePutOptions.ttl). */
  ttl?: number | null;
}

export interface StoreSearchOperation extends StoreSearchOptions {
  namespacePrefix: string[];
}

export interface StoreListNamespacesOperation {
  matchConditions?: { matchType: "prefix" | "suffix"; path: string[] }[];
  maxDepth?: number;
  limit?: number;
  offset?: number;
}

export type StoreOperation =
  | StoreGetOperation
  | StorePutOperation
  | StoreSearchOperation
  | StoreListNamespacesOperation;

/** The result of one operation of a batch: a put (or delete) gives
 * nothing, a get an item or null, a search items, a listing paths. */
export type StoreOperationResult<Op> = Op extends StorePutOperation
  ? void
  : Op extends StoreSearchOperation
    ? StoreSearchItem[]
    : Op extends StoreGetOperation
      ? StoreItem | null
      : Op extends StoreListNamespacesOperation
        ? string[][]
        : never;

/** The results of a batch, one per operation. */
export type StoreOperationResults<Ops extends readonly StoreOperation[]> = {
  [K in keyof Ops]: StoreOperationResult<Ops[K]>;
};

/** The StoreService stubs. */
export type StoreRpc = RpcClient<typeof StoreService>;

/** How a store sends a call: through a client's failover, or on a worker's
 * connection. It throws the SDK's typed errors. */
export type StoreCaller = <T>(call: (rpc: StoreRpc, options: CallOptions) => Promise<T>) => Promise<T>;

/** The most operations one BatchItems call takes. */
const MAX_BATCH = 1000;

type GetRequest = MessageInitShape<typeof GetItemRequestSchema>;
type PutRequest = MessageInitShape<typeof PutItemRequestSchema>;
type SearchRequest = MessageInitShape<typeof SearchItemsRequestSchema>;
type ListRequest = MessageInitShape<typeof ListNamespacesRequestSchema>;
type Vector = MessageInitShape<typeof ItemVectorSchema>;
type WireOperation = MessageInitShape<typeof StoreOperationSchema>["operation"];

function itemFromPb(item: ItemPb): StoreItem {
  const out: StoreItem = {
    namespace: [...item.namespace],
    key: item.key,
    value: (item.value ?? {}) as JsonObject,
    createdAt: item.createTime ? timestampDate(item.createTime) : new Date(0),
    updatedAt: item.updateTime ? timestampDate(item.updateTime) : new Date(0),
  };
  if (item.expireTime) out.expiresAt = timestampDate(item.expireTime);
  return out;
}

function searchItemFromPb(found: SearchItemPb): StoreSearchItem {
  const item: StoreSearchItem = itemFromPb(found.item!);
  if (found.score !== undefined) item.score = found.score;
  return item;
}

/** A value checked as the JSON object the service stores. */
function objectValue(value: unknown): JsonObject {
  const json = normalize(value, "value");
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new TypeError("a store value is a JSON object");
  }
  return json;
}

/** Minutes as a google.protobuf.Duration. */
function minutes(ttl: number): { seconds: bigint; nanos: number } {
  if (typeof ttl !== "number" || !Number.isFinite(ttl) || ttl <= 0) {
    throw new RangeError(`a ttl is a positive number of minutes: ${ttl}`);
  }
  const total = ttl * 60;
  const seconds = Math.floor(total);
  return { seconds: BigInt(seconds), nanos: Math.round((total - seconds) * 1e9) };
}

function count(value: number | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`${name} must be a non-negative integer: ${value}`);
  return value;
}

type Kind = "get" | "put" | "search" | "list";

function kindOf(op: StoreOperation): Kind {
  if ("namespacePrefix" in op) return "search";
  if ("namespace" in op && "key" in op) return "value" in op ? "put" : "get";
  return "list";
}

/**
 * The long-term memory store of a Cairn service, with langgraphjs
 * `BaseStore`'s methods. Reach it as `client.store`, or inside a task or
 * entrypoint as `getStore()` / `config.store`.
 */
export class StoreClient {
  /** The index config's embedder; undefined: no semantic search. */
  readonly embedder: Embedder | undefined;
  readonly ttl: StoreTtlConfig;

  /** `options` may be another StoreClient, whose index and ttl settings
   * this one shares. Throws for a bad index or ttl config. */
  constructor(
    private readonly caller: StoreCaller,
    options: StoreOptions | StoreClient = {},
  ) {
    if (options instanceof StoreClient) {
      this.embedder = options.embedder;
      this.ttl = options.ttl;
      return;
    }
    this.embedder = options.index === undefined ? undefined : new Embedder(options.index);
    const { defaultTtl, refreshOnRead = true } = options.ttl ?? {};
    if (defaultTtl !== undefined) minutes(defaultTtl);
    this.ttl = { defaultTtl, refreshOnRead };
  }

  /** The item at a namespace path and key; null when there is none (or it expired). */
  async get(namespace: string[], key: string, options: StoreGetOptions = {}): Promise<StoreItem | null> {
    const request = this.getRequest({ namespace, key, refreshTtl: options.refreshTtl });
    const response = await this.caller((rpc, opts) => rpc.getItem(request, opts));
    return response.item ? itemFromPb(response.item) : null;
  }

  /**
   * Create or replace an item (its `createdAt` is kept). `index` names the
   * fields to embed (false: none; unset: the index config's); `ttl` is in
   * minutes. Returns the item as stored, with its times and expiry.
   */
  async put(
    namespace: string[],
    key: string,
    value: Record<string, unknown>,
    index?: false | string[],
    options: StorePutOptions = {},
  ): Promise<StoreItem> {
    const op: StorePutOperation = { namespace, key, value, index };
    if ("ttl" in options) op.ttl = options.ttl;
    const [vectors] = await this.vectors([op]);
    const request = this.putRequest(op, vectors);
    const response = await this.caller((rpc, opts) => rpc.putItem(request, opts));
    return itemFromPb(response.item!);
  }

  /** Delete an item; resolves whether there was one. */
  async delete(namespace: string[], key: string): Promise<boolean> {
    const response = await this.caller((rpc, opts) => rpc.deleteItem({ namespace, key }, opts));
    return response.deleted;
  }

  /**
   * The items under a namespace prefix (`[]`: all) that match `filter`:
   * newest update first, or with a `query` (and an index config) nearest
   * first, each with its `score`.
   */
  async search(namespacePrefix: string[], options: StoreSearchOptions = {}): Promise<StoreSearchItem[]> {
    const op: StoreSearchOperation = { namespacePrefix, ...options };
    if (count(op.limit, "limit", 10) === 0) return [];
    const [queryVector] = await this.queryVectors([op]);
    const request = this.searchRequest(op, queryVector);
    const response = await this.caller((rpc, opts) => rpc.searchItems(request, opts));
    return response.items.map(searchItemFromPb);
  }

  /** The namespace paths that hold items, sorted by their labels. */
  async listNamespaces(options: StoreListNamespacesOptions = {}): Promise<string[][]> {
    const { prefix, suffix, maxDepth, limit, offset } = options;
    const request = this.listRequest({ prefix, suffix, maxDepth, limit, offset });
    if (request.limit === 0) return [];
    const response = await this.caller((rpc, opts) => rpc.listNamespaces(request, opts));
    return response.namespaces.map((path) => [...path.labels]);
  }

  /**
   * Several operations in one call (langgraphjs's `batch`): every read sees
   * the store as it was before the batch, then the writes apply in order,
   * in one transaction. Over 1000 operations go as several such calls, in
   * order. Embeddings of all puts and queries are computed first, in one
   * call to the model per kind.
   */
  async batch<Ops extends readonly StoreOperation[]>(operations: Ops): Promise<StoreOperationResults<Ops>> {
    const results: unknown[] = [];
    for (let start = 0; start < operations.length; start += MAX_BATCH) {
      results.push(...(await this.batchOnce(operations.slice(start, start + MAX_BATCH))));
    }
    return results as StoreOperationResults<Ops>;
  }

  private async batchOnce(operations: readonly StoreOperation[]): Promise<unknown[]> {
    const kinds = operations.map(kindOf);
    const puts = operations.filter((_, i) => kinds[i] === "put") as StorePutOperation[];
    const searches = operations.filter((_, i) => kinds[i] === "search") as StoreSearchOperation[];
    const [putVectors, queryVectors] = await Promise.all([this.vectors(puts), this.queryVectors(searches)]);
    const results: unknown[] = new Array(operations.length).fill(undefined);
    const sent: number[] = []; // the index of each operation sent
    const wire: WireOperation[] = [];
    let put = 0;
    let search = 0;
    operations.forEach((op, i) => {
      switch (kinds[i]) {
        case "get":
          wire.push({ case: "get", value: this.getRequest(op as StoreGetOperation) });
          break;
        case "put": {
          const p = op as StorePutOperation;
          const vectors = putVectors[put++];
          wire.push(
            p.value === null
              ? { case: "delete", value: { namespace: p.namespace, key: p.key } }
              : { case: "put", value: this.putRequest(p, vectors) },
          );
          break;
        }
        case "search": {
          const s = op as StoreSearchOperation;
          const queryVector = queryVectors[search++];
          if (count(s.limit, "limit", 10) === 0) {
            results[i] = [];
            return;
          }
          wire.push({ case: "search", value: this.searchRequest(s, queryVector) });
          break;
        }
        case "list": {
          const request = this.listRequest(matchConditions(op as StoreListNamespacesOperation));
          if (request.limit === 0) {
            results[i] = [];
            return;
          }
          wire.push({ case: "listNamespaces", value: request });
          break;
        }
      }
      sent.push(i);
    });
    if (wire.length === 0) return results;
    const operationsPb = wire.map((operation) => ({ operation }));
    const response = await this.caller((rpc, opts) => rpc.batchItems({ operations: operationsPb }, opts));
    response.results.forEach((result, j) => {
      results[sent[j]] = resultFromPb(result);
    });
    return results;
  }

  // --- requests -----------------------------------------------------------------------

  private getRequest(op: StoreGetOperation): GetRequest {
    return { namespace: op.namespace, key: op.key, refreshTtl: op.refreshTtl ?? this.ttl.refreshOnRead };
  }

  private putRequest(op: StorePutOperation, vectors: Vector[]): PutRequest {
    const request: PutRequest = { namespace: op.namespace, key: op.key, value: objectValue(op.value), vectors };
    const ttl = op.ttl === undefined ? this.ttl.defaultTtl : op.ttl;
    if (ttl !== undefined && ttl !== null) request.ttl = minutes(ttl);
    return request;
  }

  private searchRequest(op: StoreSearchOperation, queryVector: number[]): SearchRequest {
    const request: SearchRequest = {
      namespacePrefix: op.namespacePrefix,
      limit: count(op.limit, "limit", 10),
      offset: count(op.offset, "offset", 0),
      queryVector,
      refreshTtl: op.refreshTtl ?? this.ttl.refreshOnRead,
    };
    if (op.filter !== undefined) request.filter = objectValue(op.filter);
    return request;
  }

  private listRequest(options: StoreListNamespacesOptions): ListRequest {
    const maxDepth = options.maxDepth;
    if (maxDepth !== undefined && (!Number.isInteger(maxDepth) || maxDepth < 1)) {
      throw new RangeError(`maxDepth must be a positive integer: ${maxDepth}`);
    }
    return {
      prefix: options.prefix ?? [],
      suffix: options.suffix ?? [],
      maxDepth: maxDepth ?? 0,
      limit: count(options.limit, "limit", 100),
      offset: count(options.offset, "offset", 0),
    };
  }

  // --- embeddings ---------------------------------------------------------------------

  /** The vectors of each put (none for deletes, `index: false`, or without
   * an index config); every distinct text is embedded once. */
  private async vectors(puts: readonly StorePutOperation[]): Promise<Vector[][]> {
    const embedder = this.embedder;
    if (embedder === undefined) return puts.map(() => []);
    const perPut = puts.map((op) =>
      op.value === null || op.index === false ? [] : textsToEmbed(op.value, op.index ?? embedder.fields),
    );
    const texts = [...new Set(perPut.flatMap((pairs) => pairs.map(([, text]) => text)))];
    const embedded = await embedder.documents(texts);
    const byText = new Map(texts.map((text, i) => [text, embedded[i]]));
    return perPut.map((pairs) => pairs.map(([path, text]) => ({ path, values: byText.get(text)! })));
  }

  /** The query vector of each search (empty without a query or an index config). */
  private async queryVectors(searches: readonly StoreSearchOperation[]): Promise<number[][]> {
    const embedder = this.embedder;
    if (embedder === undefined) return searches.map(() => []);
    const queries = [...new Set(searches.map((s) => s.query).filter((q): q is string => !!q))];
    const embedded = await embedder.queries(queries);
    const byQuery = new Map(queries.map((query, i) => [query, embedded[i]]));
    return searches.map((s) => (s.query ? byQuery.get(s.query)! : []));
  }
}

/** A caller that sends every call on one connection (a worker's stream to
 * its service), with no failover. */
export function transportCaller(transport: Transport): StoreCaller {
  const rpc = createClient(StoreService, transport);
  return async (call) => {
    try {
      return await call(rpc, {});
    } catch (error) {
      throw fromRpcError(error);
    }
  };
}

/** langgraphjs's match conditions as a listing's prefix and suffix. */
function matchConditions(op: StoreListNamespacesOperation): StoreListNamespacesOptions {
  const options: StoreListNamespacesOptions = { maxDepth: op.maxDepth, limit: op.limit, offset: op.offset };
  for (const { matchType, path } of op.matchConditions ?? []) {
    const side = matchType === "prefix" ? "prefix" : matchType === "suffix" ? "suffix" : undefined;
    if (side === undefined) throw new TypeError(`unknown match type ${JSON.stringify(matchType)}`);
    if (options[side] !== undefined) throw new TypeError(`a listing takes one ${side} condition`);
    options[side] = path;
  }
  return options;
}

function resultFromPb(result: StoreResult): unknown {
  switch (result.result.case) {
    case "get":
      return result.result.value.item ? itemFromPb(result.result.value.item) : null;
    case "search":
      return result.result.value.items.map(searchItemFromPb);
    case "listNamespaces":
      return result.result.value.namespaces.map((path) => [...path.labels]);
    default:
      return undefined; // put, delete: nothing, as in langgraphjs
  }
}
