/**
 * CairnStore: Cairn as the long-term memory store of an existing langgraphjs
 * application, beside CairnSaver as its checkpointer.
 *
 *     import { CairnSaver, CairnStore } from "@cairn/sdk/langgraph";
 *
 *     const store = new CairnStore({ address: "127.0.0.1:50051" });
 *     const graph = builder.compile({ checkpointer: new CairnSaver(), store });
 *     // in a node: await config.store.put(["users", userId], "food", { likes: "pizza" })
 *     store.close();
 *
 * A langgraphjs `BaseStore` over the service's StoreService: `batch` sends
 * langgraphjs's operations as one BatchItems call (a compiled graph sends
 * its nodes' store calls that way), the other methods one call each. Items
 * live in the service, so every process that reaches it (CairnStore, the
 * SDK's `client.store`, `getStore()` in a Cairn task, the Python SDK) sees
 * the same memories of a namespace.
 *
 * Semantic search as langgraphjs's `InMemoryStore({ index: { dims,
 * embeddings, fields } })`: the embeddings are computed in this process and
 * the service ranks by them. TTLs as LangGraph Python's: `put(..., { ttl })`
 * in minutes and `ttl: { defaultTtl, refreshOnRead }` in the options.
 */

import {
  BaseStore,
  validateNamespace,
  type Item,
  type Operation,
  type OperationResults,
  type SearchItem,
} from "@langchain/langgraph-checkpoint";
import type { Addresses } from "./failover.js";
import { FailoverCalls, type FailoverCallOptions } from "./failover_calls.js";
import { StoreService } from "./gen/cairn/v1/store_service_pb.js";
import {
  StoreClient,
  type StoreGetOptions,
  type StoreListNamespacesOptions,
  type StoreOperation,
  type StoreOptions,
  type StorePutOptions,
  type StoreSearchOptions,
} from "./store.js";

/** Also takes `address`, `timeoutMs`, `failoverTimeoutMs` (FailoverCallOptions),
 * `token` or `apiKey`, `namespace` and `tls` (CredentialOptions), and `index`
 * and `ttl` (StoreOptions). */
export interface CairnStoreOptions extends FailoverCallOptions, StoreOptions {}

/**
 * A langgraphjs store backed by a Cairn server. One HTTP/2 connection per
 * address, opened on first use; `close()` it when done. Every store call is
 * safe to send twice (a put replaces, a delete of nothing succeeds), so a
 * call whose server went away is sent again to the next address.
 */
export class CairnStore extends BaseStore {
  /** The addresses, comma-separated. */
  readonly address: string;
  readonly addresses: readonly string[];
  /** The namespace every call acts in; undefined: the server's "default". */
  readonly namespace: string | undefined;
  /** The store client the methods go through (the SDK's API, with
   * `expiresAt` and the results of puts and deletes). */
  readonly client: StoreClient;
  private readonly calls: FailoverCalls<typeof StoreService>;

  constructor(options: CairnStoreOptions | Addresses = {}) {
    super();
    const opts: CairnStoreOptions =
      typeof options === "string" || Array.isArray(options)
        ? { address: options as Addresses }
        : (options as CairnStoreOptions);
    this.calls = new FailoverCalls("CairnStore", StoreService, opts);
    this.addresses = this.calls.addresses;
    this.address = this.addresses.join(",");
    this.namespace = this.calls.namespace;
    this.client = new StoreClient((call) => this.calls.call(call), { index: opts.index, ttl: opts.ttl });
  }

  /** Closes the connections; calls after this fail. (`stop()`, which
   * langgraphjs calls on the batching wrapper it puts around a store, leaves
   * them open.) */
  close(): void {
    this.calls.close();
  }

  /** langgraphjs's operations in one BatchItems call (see StoreClient.batch). */
  override async batch<Op extends Operation[]>(operations: Op): Promise<OperationResults<Op>> {
    const results = await this.client.batch(operations as readonly StoreOperation[]);
    return results as unknown as OperationResults<Op>;
  }

  /** The item, or null; `refreshTtl` (default `ttl.refreshOnRead`, true)
   * moves its expiry to now + its ttl. */
  override async get(namespace: string[], key: string, options: StoreGetOptions = {}): Promise<Item | null> {
    validateNamespace(namespace, { allowEmpty: true, allowReservedRoot: true });
    return this.client.get(namespace, key, options);
  }

  /** Newest first, or nearest to `query` first with an index config. */
  override async search(namespacePrefix: string[], options: StoreSearchOptions = {}): Promise<SearchItem[]> {
    validateNamespace(namespacePrefix, { allowEmpty: true, allowReservedRoot: true });
    return this.client.search(namespacePrefix, options);
  }

  /** Create or replace an item; `index` names the fields to embed (false:
   * none); `options.ttl` is in minutes (null: forever). */
  override async put(
    namespace: string[],
    key: string,
    // langgraphjs's type for values.
    value: Record<string, any>,
    index?: false | string[],
    options: StorePutOptions = {},
  ): Promise<void> {
    validateNamespace(namespace);
    await this.client.put(namespace, key, value, index, options);
  }

  override async delete(namespace: string[], key: string): Promise<void> {
    validateNamespace(namespace, { allowEmpty: true, allowReservedRoot: true });
    await this.client.delete(namespace, key);
  }

  override async listNamespaces(options: StoreListNamespacesOptions = {}): Promise<string[][]> {
    for (const path of [options.prefix, options.suffix]) {
      if (path) validateNamespace(path, { allowEmpty: true, allowReservedRoot: true });
    }
    return this.client.listNamespaces(options);
  }
}
