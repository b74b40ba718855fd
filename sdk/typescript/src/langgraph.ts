/**
 * CairnSaver: Cairn as the checkpointer of an existing langgraphjs application.
 *
 *     import { CairnSaver } from "@cairn/sdk/langgraph";
 *
 *     const checkpointer = new CairnSaver({ address: "127.0.0.1:50051" });
 *     const graph = builder.compile({ checkpointer });
 *     await graph.invoke({ topic: "cats" }, { configurable: { thread_id: "1" } });
 *     checkpointer.close();
 *
 * A separate entry point of the package, so that `@langchain/langgraph-checkpoint`
 * and `@langchain/core` stay optional peer dependencies: only this module
 * imports them. The saver talks to the service's CheckpointService; values are
 * serialized here by LangGraph's serializer (`this.serde`) and the service
 * stores the `(type, bytes)` pairs as they are. Metadata travels as JSON
 * because the service filters `list` on it.
 *
 * A call whose server is unreachable (restarting, or one replica of several
 * gone) is sent again as the Client does (failover.ts): to the next address,
 * with a short backoff after each round, for up to `failoverTimeoutMs`. Every
 * CheckpointService call is safe to send twice (writes keep the first value
 * stored, deletes and prunes are idempotent), so each one is.
 *
 * A secured service: `new CairnSaver({ address, token, namespace: "team-a",
 * tls: { caFile: "ca.pem" } })`, or the CAIRN_* environment variables (see
 * credentials.ts); every call sends the credential and the namespace.
 */

import { randomInt } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  BaseCheckpointSaver,
  TASKS,
  WRITES_IDX_MAP,
  getCheckpointId,
  maxChannelVersion,
  type ChannelVersions,
  type Checkpoint,
  type CheckpointListOptions,
  type CheckpointMetadata,
  type CheckpointPendingWrite,
  type CheckpointTuple,
  type PendingWrite,
  type SerializerProtocol,
} from "@langchain/langgraph-checkpoint";
import type { RunnableConfig } from "@langchain/core/runnables";
import type { Addresses } from "./failover.js";
import { FailoverCalls, type FailoverCallOptions } from "./failover_calls.js";
import {
  CheckpointService,
  type ListCheckpointsRequestSchema,
  type SavedBlobSchema,
  type SavedCheckpoint,
  type TypedValue,
  type TypedValueSchema,
} from "./gen/cairn/v1/checkpoint_service_pb.js";
import { PruneStrategy } from "./gen/cairn/v1/thread_service_pb.js";

export type { CredentialOptions, TlsOptions } from "./credentials.js";
export type { FailoverCallOptions } from "./failover_calls.js";
export { CairnStore } from "./langgraph_store.js";
export type { CairnStoreOptions } from "./langgraph_store.js";

/** The type of a blob for a channel that has no value at its version (as in the Python saver). */
const EMPTY = "empty";

/** The largest page ListCheckpoints serves. */
const MAX_PAGE_SIZE = 1000;

/** Also takes `address`, `timeoutMs`, `failoverTimeoutMs` (FailoverCallOptions)
 * and `token` or `apiKey`, `namespace` and `tls` (CredentialOptions). */
export interface CairnSaverOptions extends FailoverCallOptions {
  /** LangGraph's serializer; default its JsonPlusSerializer. */
  serde?: SerializerProtocol;
  /** Checkpoints per ListCheckpoints page, 1-1000; 0 (default) lets the service pick (100). */
  listPageSize?: number;
}

type Configurable = Record<string, unknown>;

function configurable(config: RunnableConfig | undefined): Configurable {
  return (config?.configurable ?? {}) as Configurable;
}

/** The thread id as the service keeps it (text); undefined when the config has none. */
function threadIdOf(config: RunnableConfig | undefined): string | undefined {
  const id = configurable(config).thread_id;
  return id === undefined || id === null ? undefined : String(id);
}

function nsOf(config: RunnableConfig | undefined): string {
  const ns = configurable(config).checkpoint_ns;
  return ns === undefined || ns === null ? "" : String(ns);
}

function checkpointConfig(threadId: string, ns: string, checkpointId: string): RunnableConfig {
  return { configurable: { thread_id: threadId, checkpoint_ns: ns, checkpoint_id: checkpointId } };
}

/**
 * A LangGraph checkpoint saver backed by a Cairn server.
 *
 * One HTTP/2 connection per address, opened on first use; `close()` it when
 * done. Several savers (in several processes) may share one server: a graph
 * interrupted through one resumes through another. A call made while the
 * server restarts waits for it (see `failoverTimeoutMs`).
 */
export class CairnSaver extends BaseCheckpointSaver {
  /** The addresses, comma-separated. */
  readonly address: string;
  readonly addresses: readonly string[];
  /** The namespace every call acts in; undefined: the server's "default". */
  readonly namespace: string | undefined;
  private readonly calls: FailoverCalls<typeof CheckpointService>;
  private readonly listPageSize: number;

  constructor(options: CairnSaverOptions | Addresses = {}) {
    const opts: CairnSaverOptions =
      typeof options === "string" || Array.isArray(options)
        ? { address: options as Addresses }
        : (options as CairnSaverOptions);
    super(opts.serde);
    const size = opts.listPageSize ?? 0;
    if (!Number.isInteger(size) || size < 0 || size > MAX_PAGE_SIZE) {
      throw new RangeError(`listPageSize must be an integer from 0 to ${MAX_PAGE_SIZE}: ${size}`);
    }
    this.listPageSize = size;
    this.calls = new FailoverCalls("CairnSaver", CheckpointService, opts);
    this.addresses = this.calls.addresses;
    this.address = this.addresses.join(",");
    this.namespace = this.calls.namespace;
  }

  /** Closes the connections; calls after this fail. */
  close(): void {
    this.calls.close();
  }

  // --- values -------------------------------------------------------------------------

  private async typed(value: unknown): Promise<MessageInitShape<typeof TypedValueSchema>> {
    const [type, data] = await this.serde.dumpsTyped(value);
    return { type, data };
  }

  private load(value: TypedValue | undefined): Promise<unknown> {
    return this.serde.loadsTyped(value?.type ?? "", value?.data ?? new Uint8Array());
  }

  private async pendingWrites(saved: SavedCheckpoint): Promise<CheckpointPendingWrite[]> {
    // The service returns them in (task_path, task_id, idx) order, the order
    // LangGraph applies a superstep's writes in.
    return Promise.all(
      saved.pendingWrites.map(
        async (w): Promise<CheckpointPendingWrite> => [w.taskId, w.channel, await this.load(w.value)],
      ),
    );
  }

  private async tuple(saved: SavedCheckpoint): Promise<CheckpointTuple> {
    const body = (await this.load(saved.checkpoint)) as Checkpoint;
    const values: Record<string, unknown> = {};
    for (const blob of saved.blobs) {
      if (blob.value?.type !== EMPTY) values[blob.channel] = await this.load(blob.value);
    }
    const checkpoint: Checkpoint = { ...body, channel_values: values };
    const { threadId, checkpointNs: ns, parentCheckpointId } = saved;
    if (checkpoint.v < 4 && parentCheckpointId) {
      await this.migratePendingSends(checkpoint, threadId, ns, parentCheckpointId);
    }
    const tuple: CheckpointTuple = {
      config: checkpointConfig(threadId, ns, saved.checkpointId),
      checkpoint,
      metadata: JSON.parse(saved.metadataJson) as CheckpointMetadata,
      pendingWrites: await this.pendingWrites(saved),
    };
    if (parentCheckpointId) tuple.parentConfig = checkpointConfig(threadId, ns, parentCheckpointId);
    return tuple;
  }

  /**
   * Checkpoints older than format 4 kept the Sends of a step as writes to
   * TASKS on their parent; LangGraph expects them as the channel's value.
   */
  private async migratePendingSends(
    checkpoint: Checkpoint,
    threadId: string,
    ns: string,
    parentId: string,
  ): Promise<void> {
    const response = await this.calls.call((rpc, options) =>
      rpc.getTuple({ threadId, checkpointNs: ns, checkpointId: parentId }, options),
    );
    const sends: unknown[] = [];
    for (const write of response.checkpoint?.pendingWrites ?? []) {
      if (write.channel === TASKS) sends.push(await this.load(write.value));
    }
    const versions = Object.values(checkpoint.channel_versions);
    checkpoint.channel_values[TASKS] = sends;
    checkpoint.channel_versions[TASKS] =
      versions.length > 0 ? maxChannelVersion(...versions) : this.getNextVersion(undefined);
  }

  // --- BaseCheckpointSaver --------------------------------------------------------------

  /**
   * The next version of a channel: one more than the integer part of
   * `current`, plus a random fraction. The service keeps the first value
   * stored under a (thread, namespace, channel, version), as LangGraph's
   * savers do; with LangGraph's plain counters, a fork or a replay of a
   * thread would write its new value under a version another branch already
   * used and read that branch's value back. The fraction (32 random bits,
   * exact below a million versions) keeps branches apart; the order of
   * versions is the counters' order.
   */
  override getNextVersion(current: number | undefined): number {
    const counter =
      current === undefined ? 0 : Math.floor(Number.parseFloat(String(current)));
    return (Number.isFinite(counter) ? counter : 0) + 1 + randomInt(1, 2 ** 32) / 2 ** 32;
  }

  /**
   * The checkpoint of `config.configurable.checkpoint_id`, or the thread's
   * latest in its namespace; undefined when there is none (or no thread_id).
   */
  override async getTuple(config: RunnableConfig): Promise<CheckpointTuple | undefined> {
    const threadId = threadIdOf(config);
    if (threadId === undefined) return undefined;
    const request = { threadId, checkpointNs: nsOf(config), checkpointId: getCheckpointId(config) };
    const response = await this.calls.call((rpc, options) => rpc.getTuple(request, options));
    return response.checkpoint ? this.tuple(response.checkpoint) : undefined;
  }

  /**
   * Checkpoints newest first. `config.configurable` narrows them to a
   * thread, a namespace and a checkpoint id when it has those keys; `filter`
   * keeps those whose metadata has the given top-level values; `before`
   * those older than its checkpoint. Pages are fetched as the caller iterates.
   */
  override async *list(
    config: RunnableConfig,
    options: CheckpointListOptions = {},
  ): AsyncGenerator<CheckpointTuple> {
    const { filter, before } = options;
    let remaining = options.limit === undefined ? Infinity : Math.floor(options.limit);
    if (remaining <= 0) return;
    const where = configurable(config);
    const request: MessageInitShape<typeof ListCheckpointsRequestSchema> = {
      filterJson: filter && Object.keys(filter).length > 0 ? JSON.stringify(filter) : "",
      limit: Number.isFinite(remaining) ? remaining : 0,
      pageSize: this.listPageSize,
    };
    const threadId = threadIdOf(config);
    if (threadId !== undefined) request.threadId = threadId;
    if (where.checkpoint_ns !== undefined && where.checkpoint_ns !== null) {
      request.checkpointNs = String(where.checkpoint_ns);
    }
    const checkpointId = config ? getCheckpointId(config) : "";
    if (checkpointId) request.checkpointId = checkpointId;
    const beforeId = before ? getCheckpointId(before) : "";
    if (beforeId) request.beforeCheckpointId = beforeId;

    let pageToken = "";
    for (;;) {
      const page = { ...request, pageToken };
      const response = await this.calls.call((rpc, opts) => rpc.listCheckpoints(page, opts));
      for (const saved of response.checkpoints) {
        yield await this.tuple(saved);
        remaining -= 1;
        if (remaining <= 0) return;
      }
      // A server that does not page yet returns everything and no token.
      if (!response.nextPageToken) return;
      if (response.nextPageToken === pageToken) {
        throw new Error(`ListCheckpoints returned the page token it was given (${pageToken})`);
      }
      pageToken = response.nextPageToken;
    }
  }

  /**
   * Stores a checkpoint, with the values of the channels in `newVersions`
   * (the others are already stored at their versions). Returns the config
   * of the stored checkpoint.
   */
  override async put(
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    newVersions: ChannelVersions,
  ): Promise<RunnableConfig> {
    if (config?.configurable === undefined) {
      throw new Error('CairnSaver.put: the config has no "configurable" (it needs a thread_id)');
    }
    const threadId = threadIdOf(config);
    if (threadId === undefined) {
      throw new Error('CairnSaver.put: config.configurable has no "thread_id"');
    }
    const ns = nsOf(config);
    const { channel_values: values = {}, ...body } = checkpoint;
    const blobs: MessageInitShape<typeof SavedBlobSchema>[] = await Promise.all(
      Object.entries(newVersions).map(async ([channel, version]) => ({
        channel,
        version: String(version),
        value: Object.prototype.hasOwnProperty.call(values, channel)
          ? await this.typed(values[channel])
          : { type: EMPTY },
      })),
    );
    const channelVersions: Record<string, string> = {};
    for (const [channel, version] of Object.entries(checkpoint.channel_versions)) {
      channelVersions[channel] = String(version);
    }
    const parentId = configurable(config).checkpoint_id;
    const request = {
      threadId,
      checkpointNs: ns,
      checkpointId: checkpoint.id,
      parentCheckpointId: typeof parentId === "string" ? parentId : "",
      checkpoint: await this.typed(body),
      metadataJson: JSON.stringify(metadata),
      channelVersions,
      blobs,
    };
    await this.calls.call((rpc, options) => rpc.putCheckpoint(request, options));
    return checkpointConfig(threadId, ns, checkpoint.id);
  }

  /**
   * Stores the writes of one task on the checkpoint of `config`. A write to a
   * special channel (error, interrupt, resume, scheduled) replaces an earlier
   * one; for the others the first one stored wins.
   */
  override async putWrites(
    config: RunnableConfig,
    writes: PendingWrite[],
    taskId: string,
    taskPath = "",
  ): Promise<void> {
    const threadId = threadIdOf(config);
    if (threadId === undefined) {
      throw new Error('CairnSaver.putWrites: config.configurable has no "thread_id"');
    }
    const checkpointId = configurable(config).checkpoint_id;
    if (typeof checkpointId !== "string" || checkpointId === "") {
      throw new Error('CairnSaver.putWrites: config.configurable has no "checkpoint_id"');
    }
    const request = {
      threadId,
      checkpointNs: nsOf(config),
      checkpointId,
      writes: await Promise.all(
        writes.map(async ([channel, value], idx) => ({
          taskId,
          taskPath,
          idx: WRITES_IDX_MAP[channel] ?? idx,
          channel,
          value: await this.typed(value),
        })),
      ),
    };
    await this.calls.call((rpc, options) => rpc.putWrites(request, options));
  }

  /** Deletes every checkpoint, channel value and write of the thread, in all namespaces. */
  override async deleteThread(threadId: string): Promise<void> {
    await this.calls.call((rpc, options) =>
      rpc.deleteThreadCheckpoints({ threadId: String(threadId) }, options),
    );
  }

  // --- beyond langgraphjs' BaseCheckpointSaver (as the Python saver has them) ---------------

  /** Deletes the checkpoints whose metadata `run_id` is one of `runIds`, with their writes. */
  async deleteForRuns(runIds: string[]): Promise<void> {
    await this.calls.call((rpc, options) => rpc.deleteForRuns({ runIds }, options));
  }

  /** Copies every checkpoint, value and write of one thread to another, keeping ids. */
  async copyThread(sourceThreadId: string, targetThreadId: string): Promise<void> {
    await this.calls.call((rpc, options) =>
      rpc.copyThreadCheckpoints({ sourceThreadId, targetThreadId }, options),
    );
  }

  /**
   * "keep_latest" keeps each namespace's latest checkpoint (with its writes
   * and the values it uses); "delete" deletes the threads' checkpoints.
   */
  async prune(
    threadIds: string[],
    options: { strategy?: "keep_latest" | "delete" } = {},
  ): Promise<void> {
    const strategies = { keep_latest: PruneStrategy.KEEP_LATEST, delete: PruneStrategy.DELETE };
    const strategy = strategies[options.strategy ?? "keep_latest"];
    if (strategy === undefined) {
      throw new TypeError(`unknown prune strategy ${options.strategy}; use keep_latest or delete`);
    }
    await this.calls.call((rpc, opts) => rpc.pruneCheckpoints({ threadIds, strategy }, opts));
  }
}
