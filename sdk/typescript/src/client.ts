/**
 * Client: start, stream, resume and inspect runs and threads.
 *
 *     const client = new Client({ address: "127.0.0.1:50051" });
 *     let run = await client.invoke("workflow", { topic: "cats" }, { threadId: "t1" });
 *     if (run.interrupts.length > 0) {
 *       run = await client.invoke("workflow", new Command({ resume: true }), { threadId: "t1" });
 *     }
 *     console.log(run.output);
 *     client.close();
 *
 * Several replicas of the service: `new Client({ address: ["10.0.0.1:50051",
 * "10.0.0.2:50051"] })` (or "10.0.0.1:50051,10.0.0.2:50051"); a call whose
 * server is gone fails over to the next one.
 *
 * A secured service: `new Client({ address, apiKey, namespace: "team-a", tls:
 * { caFile: "ca.pem" } })`, or the CAIRN_TOKEN / CAIRN_API_KEY,
 * CAIRN_NAMESPACE and CAIRN_TLS* environment variables (see credentials.ts).
 */

import { randomUUID } from "node:crypto";
import { createClient, type Client as RpcClient } from "@connectrpc/connect";
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { resolveCredentials, unreachableHint, type CredentialOptions } from "./credentials.js";
import { RunFailedError, fromRpcError } from "./errors.js";
import {
  ESTABLISHED_MS,
  Failover,
  connectionLoss,
  parseAddresses,
  unavailable,
  type Addresses,
} from "./failover.js";
import { RunState as RunStatePb } from "./gen/cairn/v1/run_pb.js";
import { ThreadStatus as ThreadStatusPb, type StateSnapshot as StateSnapshotPb } from "./gen/cairn/v1/thread_pb.js";
import {
  RunService,
  type SessionRequestSchema,
  type StreamRequestSchema,
} from "./gen/cairn/v1/run_service_pb.js";
import { StoreService } from "./gen/cairn/v1/store_service_pb.js";
import { ScheduleService } from "./gen/cairn/v1/schedule_service_pb.js";
import { ThreadService } from "./gen/cairn/v1/thread_service_pb.js";
import {
  TaskKind,
  WorkerService,
  type ConnectedWorker as ConnectedWorkerPb,
} from "./gen/cairn/v1/worker_service_pb.js";
import { withMessagePair } from "./messages.js";
import { AsyncQueue } from "./queue.js";
import { StoreClient, type StoreOptions } from "./store.js";
import { SchedulesClient } from "./schedules.js";
import { callerContext, startClientSpan, tracedEvents } from "./tracing.js";
import { connect, type Connection } from "./transport.js";
import {
  Command,
  durabilityPb,
  multitaskStrategyPb,
  runEventFromPb,
  runFromPb,
  runStatePb,
  stateFromPb,
  streamModePb,
  threadFromPb,
  threadStatusPb,
  type Durability,
  type MultitaskStrategy,
  type Interrupt,
  type Run,
  type RunEvent,
  type RunState,
  type StateSnapshot,
  type StreamMode,
  type Thread,
  type ThreadStatus,
} from "./types.js";
import { toValue } from "./values.js";

/** An entrypoint (or anything served under a name), or its name. */
export type Target = string | { readonly name: string };

export interface RunOptions {
  threadId: string;
  durability?: Durability;
  metadata?: JsonObject;
  /** Makes a retried request attach to the run the first one started. When
   * unset, `invoke` and `stream` use a random one, so that sending the
   * request again to another address cannot start the run twice. */
  requestId?: string;
  /** Create the thread when it does not exist. Default true. */
  createThread?: boolean;
  /** Start from this older checkpoint instead of the latest (time travel). */
  checkpointId?: string;
  /** What to do when the thread has an active run. Default "reject". */
  multitaskStrategy?: MultitaskStrategy;
}

export interface StreamOptions extends RunOptions {
  /** Stream modes to record and stream. Default "updates". */
  streamMode?: StreamMode | StreamMode[];
  /** Also yield chunks of subgraphs and nested workflows (a non-empty
   * namespace), as langgraphjs's `stream(..., { subgraphs: true })`. */
  subgraphs?: boolean;
}

/** Filters and limit of `Client.listRuns`. */
export interface ListRunsOptions {
  /** Only runs in this state. */
  state?: RunState;
  /** Only runs that wait on a worker or a retry (their `waiting` is not empty). */
  waiting?: boolean;
  /** At most this many runs (default 100), fetched page by page. */
  limit?: number;
}

/** Also takes `token` or `apiKey`, `namespace` and `tls` (CredentialOptions):
 * every call sends the credential and the namespace. */
export interface ClientOptions extends CredentialOptions {
  /**
   * host:port of the service, or of several replicas of it: a comma-separated
   * string or an array. Default 127.0.0.1:50051.
   */
  address?: Addresses;
  /** Deadline of unary calls, ms (of each attempt). */
  timeoutMs?: number;
  /**
   * How long a call keeps trying the service's addresses, round robin with a
   * short backoff, after its server became unreachable (UNAVAILABLE), ms;
   * every address is tried at least once. Then the call throws
   * UnavailableError. Default 30000.
   */
  failoverTimeoutMs?: number;
  /** How `client.store` embeds (an index config) and expires items. */
  store?: StoreOptions;
}

type StartFields = MessageInitShape<typeof StreamRequestSchema>;

function targetName(target: Target | undefined): string {
  return target === undefined ? "" : typeof target === "string" ? target : target.name;
}

function startFields(target: Target | undefined, input: unknown, options: StreamOptions) {
  const fields: StartFields = {
    threadId: options.threadId,
    target: targetName(target),
    metadata: options.metadata,
    requestId: options.requestId ?? "",
    createThread: options.createThread ?? true,
    checkpointId: options.checkpointId ?? "",
  };
  if (options.durability !== undefined) fields.durability = durabilityPb(options.durability);
  if (options.multitaskStrategy !== undefined) {
    fields.multitaskStrategy = multitaskStrategyPb(options.multitaskStrategy);
  }
  if (input instanceof Command) fields.command = input.toProto();
  else if (input !== undefined && input !== null) fields.input = toValue(input, "input");
  if (options.streamMode !== undefined) {
    const modes = Array.isArray(options.streamMode) ? options.streamMode : [options.streamMode];
    fields.streamModes = modes.map(streamModePb);
  }
  return fields;
}

/**
 * The RunEvents of a server stream, with errors thrown as CairnError. Chunks
 * from subgraphs and nested workflows (a non-empty namespace) are dropped
 * unless `subgraphs`, as in LangGraph.
 */
async function* events(
  stream: AsyncIterable<{ event?: Parameters<typeof runEventFromPb>[0] }>,
  subgraphs = false,
): AsyncGenerator<RunEvent> {
  try {
    for await (const response of stream) {
      if (!response.event) continue;
      const event = await withMessagePair(runEventFromPb(response.event));
      if (subgraphs || event.namespace.length === 0) yield event;
    }
  } catch (error) {
    throw fromRpcError(error);
  }
}

/**
 * An interactive run on one bidirectional stream: iterate its events; when a
 * run stops at an interrupt, answer with `session.resume(value)` and keep
 * iterating. The iteration ends when a run ends without an interrupt.
 *
 * A session talks to one address (the one the client's calls last reached)
 * and does not fail over: when that server goes away, iterating throws
 * UnavailableError or CairnError. Continue with `client.join(runId,
 * { afterEventId })` (which fails over) and `client.invoke(target, new
 * Command({ resume }), ...)`.
 */
export class Session implements AsyncIterable<RunEvent> {
  /** The interrupts of the latest run that stopped at one. */
  interrupts: Interrupt[] = [];
  private readonly stream: AsyncGenerator<RunEvent>;

  /** `wrap` sees the events go by (the client's span of the session). */
  constructor(
    responses: AsyncIterable<{ event?: Parameters<typeof runEventFromPb>[0] }>,
    private readonly requests: AsyncQueue<MessageInitShape<typeof SessionRequestSchema>>,
    subgraphs = false,
    wrap: (events: AsyncGenerator<RunEvent>) => AsyncGenerator<RunEvent> = (e) => e,
  ) {
    this.stream = wrap(events(responses, subgraphs));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<RunEvent> {
    for await (const event of this.stream) {
      if (event.run) this.interrupts = event.run.interrupts;
      yield event;
    }
  }

  /** Answer the pending interrupts with a value or a Command. */
  resume(resume: unknown): void {
    const command = resume instanceof Command ? resume : new Command({ resume });
    this.requests.push({ kind: { case: "resume", value: command.toProto() } });
  }

  /** Close the client's side of the stream. */
  close(): void {
    this.requests.close();
  }
}

const PAGE = 200;

/**
 * A worker connected to the server that answered `listWorkers()` (one
 * replica): what it serves and how many of its slots are free there now.
 */
export interface ConnectedWorker {
  workerId: string;
  /** The replica it is connected to: the one that answered. */
  replicaId: string;
  sdkLanguage: string;
  sdkVersion: string;
  /** e.g. `pid@host`. */
  identity: string;
  tasks: string[];
  entrypoints: string[];
  /** The graphs it serves (their nodes and routers are among `tasks`). */
  graphs: string[];
  /** Tasks it runs at once (its `maxConcurrency`). */
  maxConcurrency: number;
  freeTaskSlots: number;
  maxEntrypoints: number;
  freeEntrypointSlots: number;
}

function connectedWorkerFromPb(w: ConnectedWorkerPb): ConnectedWorker {
  const named = (kind: TaskKind) => w.names.filter((n) => n.kind === kind).map((n) => n.name);
  return {
    workerId: w.workerId,
    replicaId: w.replicaId,
    sdkLanguage: w.sdkLanguage,
    sdkVersion: w.sdkVersion,
    identity: w.identity,
    tasks: named(TaskKind.TASK),
    entrypoints: named(TaskKind.ENTRYPOINT),
    graphs: named(TaskKind.GRAPH),
    maxConcurrency: w.maxConcurrentTasks,
    freeTaskSlots: w.freeTaskSlots,
    maxEntrypoints: w.maxConcurrentEntrypoints,
    freeEntrypointSlots: w.freeEntrypointSlots,
  };
}

/** The RPC clients of one address. */
interface Endpoint {
  readonly address: string;
  readonly connection: Connection;
  readonly runs: RpcClient<typeof RunService>;
  readonly threads: RpcClient<typeof ThreadService>;
  readonly workers: RpcClient<typeof WorkerService>;
  readonly store: RpcClient<typeof StoreService>;
  readonly schedules: RpcClient<typeof ScheduleService>;
}

type EventResponses = AsyncIterable<{ event?: Parameters<typeof runEventFromPb>[0] }>;

interface CallOptions {
  /** Send the call again after a connection broke during it (it may have
   * run). Default true; false for calls that are not safe to repeat. */
  repeatable?: boolean;
}

/**
 * Client of the Cairn service. Call `close()` when done.
 *
 * Given several addresses (replicas of one service), a call whose server is
 * unreachable goes to the next address (see `ClientOptions.failoverTimeoutMs`);
 * the others throw as they are. Reads, `invoke`, `createThread` and
 * `cancelRun` are sent again even when the connection broke during the call
 * (a run start carries a request id, so it cannot start twice);
 * `deleteThread` and `updateState` only when the request surely did not run,
 * else they throw UnavailableError. `stream` and `join` continue after a
 * break with the events after the last one they yielded, so every event is
 * seen once, in order. `session` stays on one address.
 */
export class Client {
  /** The service's addresses, in the order given. */
  readonly addresses: readonly string[];
  /** The namespace every call acts in; undefined: the server's "default". */
  readonly namespace: string | undefined;
  /** The long-term memory store of the client's namespace (see store.ts). */
  readonly store: StoreClient;
  /** The schedules of the client's namespace (see schedules.ts). */
  readonly schedules: SchedulesClient;
  private readonly endpoints: Endpoint[];
  private readonly failover: Failover;
  private readonly timeoutMs: number | undefined;
  private closed = false;

  constructor(options: ClientOptions | Addresses = {}) {
    const opts: ClientOptions = typeof options === "string" || Array.isArray(options)
      ? { address: options as Addresses }
      : (options as ClientOptions);
    this.addresses = parseAddresses(opts.address);
    this.timeoutMs = opts.timeoutMs;
    const credentials = resolveCredentials(opts);
    this.failover = new Failover(
      this.addresses.length,
      opts.failoverTimeoutMs ?? 30_000,
      unreachableHint(credentials),
    );
    this.namespace = credentials.namespace;
    this.endpoints = this.addresses.map((address) => {
      // A connection opens at its first call.
      const connection = connect(address, { credentials });
      return {
        address,
        connection,
        runs: createClient(RunService, connection.transport),
        threads: createClient(ThreadService, connection.transport),
        workers: createClient(WorkerService, connection.transport),
        store: createClient(StoreService, connection.transport),
        schedules: createClient(ScheduleService, connection.transport),
      };
    });
    // Store calls are idempotent (a put replaces, a delete of nothing
    // succeeds), so they fail over like reads.
    this.store = new StoreClient(
      (rpc) => this.call((endpoint) => rpc(endpoint.store, { timeoutMs: this.timeoutMs })),
      opts.store,
    );
    // Schedule calls are safe to repeat: creates and triggers carry a
    // request id, pauses and resumes are idempotent, and a repeated delete
    // reports NOT_FOUND.
    this.schedules = new SchedulesClient(
      (rpc) => this.call((endpoint) => rpc(endpoint.schedules, { timeoutMs: this.timeoutMs })),
    );
  }

  /** The address calls go to now: the last one that answered. */
  get address(): string {
    return this.addresses[this.failover.current];
  }

  close(): void {
    this.closed = true;
    for (const endpoint of this.endpoints) endpoint.connection.close();
  }

  /** A unary call, sent to the next address while its server is unreachable. */
  private async call<T>(rpc: (endpoint: Endpoint) => Promise<T>, options: CallOptions = {}): Promise<T> {
    const attempts = this.failover.attempts();
    for (;;) {
      const endpoint = this.endpoints[attempts.index];
      try {
        return await rpc(endpoint);
      } catch (error) {
        const loss = connectionLoss(error);
        if (loss === undefined || this.closed) throw fromRpcError(error);
        const gone = unavailable(error, endpoint.address);
        if (loss === "lost" && options.repeatable === false) throw gone;
        await attempts.failed(gone);
      }
    }
  }

  /**
   * A run's events from a stream that `open` starts, continued after a broken
   * connection with JoinRun on the next address after the last event seen.
   * Chunks from subgraphs and nested workflows (a non-empty namespace) are
   * dropped unless `subgraphs`, as in LangGraph.
   */
  private async *follow(
    open: ((endpoint: Endpoint) => EventResponses) | undefined,
    runId: string,
    afterEventId: number,
    subgraphs: boolean,
  ): AsyncGenerator<RunEvent> {
    const attempts = this.failover.attempts();
    let last = afterEventId;
    for (;;) {
      const endpoint = this.endpoints[attempts.index];
      const responses =
        open !== undefined && runId === ""
          ? open(endpoint)
          : endpoint.runs.joinRun({ runId, afterEventId: BigInt(last) });
      const opened = Date.now();
      try {
        for await (const response of responses) {
          attempts.succeeded();
          if (!response.event) continue;
          const event = await withMessagePair(runEventFromPb(response.event));
          if (event.eventId <= last) continue;
          runId = event.runId;
          last = event.eventId;
          if (subgraphs || event.namespace.length === 0) yield event;
        }
        return;
      } catch (error) {
        const loss = connectionLoss(error);
        if (loss === undefined || this.closed) throw fromRpcError(error);
        // A quiet stream (a run waiting for a worker) that broke after a
        // while had reached its server: this is a new outage, with a new budget.
        if (loss === "lost" && Date.now() - opened >= ESTABLISHED_MS) attempts.succeeded();
        await attempts.failed(unavailable(error, endpoint.address));
      }
    }
  }

  // --- runs ---------------------------------------------------------------------------

  /**
   * Run `target` on a thread and wait until it finishes or stops at an
   * interrupt. `input` may be a `Command` to resume, or null to retry the
   * thread's unfinished run (as in LangGraph). Throws RunFailedError when the
   * run fails.
   */
  async invoke(target: Target | undefined, input: unknown, options: RunOptions): Promise<Run> {
    const { streamModes: _, ...request } = startFields(target, input, options);
    request.requestId ||= randomUUID();
    const span = startClientSpan("Invoke", request.target ?? "", options.threadId);
    try {
      const callOptions = { timeoutMs: this.timeoutMs, headers: span?.headers };
      const response = await this.call(({ runs }) => runs.invoke(request, callOptions));
      let run = runFromPb(response.run!);
      if (run.state === "pending" || run.state === "running") {
        // A retry found the run the first attempt started, still going on
        // elsewhere: wait for its end as the first attempt would have.
        for await (const event of this.join(run.runId)) if (event.run) run = event.run;
      }
      if (run.state === "failed") {
        const error = new RunFailedError(run);
        span?.end({ run, error });
        throw error;
      }
      span?.end({ run });
      return run;
    } catch (error) {
      span?.end({ error });
      throw error;
    }
  }

  /**
   * Run `target` and yield its events: chunks of the chosen stream modes and
   * lifecycle events. After a disconnect, continue with
   * `join(runId, { afterEventId: lastEvent.eventId })`.
   */
  stream(target: Target | undefined, input: unknown, options: StreamOptions): AsyncGenerator<RunEvent> {
    const request = startFields(target, input, options);
    request.requestId ||= randomUUID();
    const subgraphs = options.subgraphs ?? false;
    const parent = callerContext();
    if (parent === undefined) return this.follow(({ runs }) => runs.stream(request), "", 0, subgraphs);
    // The span starts with the iteration (when the call is made), as a child
    // of the context this method was called in.
    const traced = async function* (this: Client) {
      const span = startClientSpan("Stream", request.target ?? "", options.threadId, parent);
      const headers = span?.headers;
      const open = ({ runs }: Endpoint) => runs.stream(request, { headers });
      yield* tracedEvents(span, this.follow(open, "", 0, subgraphs));
    };
    return traced.call(this);
  }

  /** Yield a run's events after `afterEventId`, live while it runs. */
  join(
    runId: string,
    { afterEventId = 0, subgraphs = false }: { afterEventId?: number; subgraphs?: boolean } = {},
  ): AsyncGenerator<RunEvent> {
    return this.follow(undefined, runId, afterEventId, subgraphs);
  }

  /** Start an interactive session (see `Session`) on the address the
   * client's calls last reached; it does not fail over. */
  session(target: Target | undefined, input: unknown, options: StreamOptions): Session {
    const { requestId: _, ...start } = options;
    const requests = new AsyncQueue<MessageInitShape<typeof SessionRequestSchema>>();
    requests.push({ kind: { case: "start", value: startFields(target, input, start) } });
    const { runs } = this.endpoints[this.failover.current];
    const span = startClientSpan("Session", targetName(target), options.threadId);
    if (span === undefined) return new Session(runs.session(requests), requests, options.subgraphs);
    const responses = runs.session(requests, { headers: span.headers });
    return new Session(responses, requests, options.subgraphs, (events) => tracedEvents(span, events));
  }

  async getRun(runId: string): Promise<Run> {
    const response = await this.call(({ runs }) => runs.getRun({ runId }, { timeoutMs: this.timeoutMs }));
    return runFromPb(response.run!);
  }

  /**
   * A thread's runs, newest first; without a thread, the runs of every thread
   * of the client's namespace. `waiting: true` keeps only the runs that wait
   * on a worker or a retry (their `waiting` is not empty):
   *
   *     for (const run of await client.listRuns({ waiting: true })) {
   *       console.log(run.threadId, run.waiting[0].reason, run.waiting[0].taskName);
   *     }
   */
  listRuns(options?: ListRunsOptions): Promise<Run[]>;
  listRuns(threadId: string | undefined, options?: ListRunsOptions): Promise<Run[]>;
  async listRuns(first?: string | ListRunsOptions, second: ListRunsOptions = {}): Promise<Run[]> {
    const [threadId, { state, waiting = false, limit = 100 }] =
      typeof first === "object" ? ["", first] : [first ?? "", second];
    const runs: Run[] = [];
    let pageToken = "";
    while (runs.length < limit) {
      const response = await this.call((endpoint) =>
        endpoint.runs.listRuns({
          threadId,
          pageSize: Math.min(PAGE, limit - runs.length),
          pageToken,
          state: state ? runStatePb(state) : RunStatePb.UNSPECIFIED,
          waiting,
        }),
      );
      runs.push(...response.runs.map(runFromPb));
      pageToken = response.nextPageToken;
      if (!pageToken) break;
    }
    return runs;
  }

  /** Cancel a run; safe to repeat (a cancelled run cancelled again is returned). */
  async cancelRun(runId: string): Promise<Run> {
    const response = await this.call(({ runs }) => runs.cancelRun({ runId }));
    return runFromPb(response.run!);
  }

  // --- workers ------------------------------------------------------------------------

  /**
   * The workers connected to the server that answers (one replica), in the
   * order they connected, with what each serves and its free slots.
   */
  async listWorkers({ limit = 1000 }: { limit?: number } = {}): Promise<ConnectedWorker[]> {
    const workers: ConnectedWorker[] = [];
    let pageToken = "";
    while (workers.length < limit) {
      const response = await this.call((endpoint) =>
        endpoint.workers.listWorkers({ pageSize: Math.min(PAGE, limit - workers.length), pageToken }),
      );
      workers.push(...response.workers.map(connectedWorkerFromPb));
      pageToken = response.nextPageToken;
      if (!pageToken) break;
    }
    return workers;
  }

  // --- threads ------------------------------------------------------------------------

  /** Create a thread (with a generated id when `threadId` is empty). A
   * `requestId` makes a retry return the thread the first request created;
   * a random one is used when unset. */
  async createThread(
    threadId = "",
    { metadata, requestId = randomUUID() }: { metadata?: JsonObject; requestId?: string } = {},
  ): Promise<Thread> {
    const response = await this.call(({ threads }) => threads.createThread({ threadId, metadata, requestId }));
    return threadFromPb(response.thread!);
  }

  async getThread(threadId: string): Promise<Thread> {
    const response = await this.call(({ threads }) => threads.getThread({ threadId }));
    return threadFromPb(response.thread!);
  }

  /** Threads newest first, filtered by top-level metadata and status. */
  async listThreads(
    { metadata, status, limit = 100 }: { metadata?: JsonObject; status?: ThreadStatus; limit?: number } = {},
  ): Promise<Thread[]> {
    const threads: Thread[] = [];
    let pageToken = "";
    while (threads.length < limit) {
      const response = await this.call((endpoint) =>
        endpoint.threads.listThreads({
          pageSize: Math.min(PAGE, limit - threads.length),
          pageToken,
          metadata,
          status: status ? threadStatusPb(status) : ThreadStatusPb.UNSPECIFIED,
        }),
      );
      threads.push(...response.threads.map(threadFromPb));
      pageToken = response.nextPageToken;
      if (!pageToken) break;
    }
    return threads;
  }

  async deleteThread(threadId: string): Promise<void> {
    await this.call(({ threads }) => threads.deleteThread({ threadId }), { repeatable: false });
  }

  /** The thread's state at its latest checkpoint (or at `checkpointId`). */
  async getState(threadId: string, { checkpointId = "" } = {}): Promise<StateSnapshot> {
    const response = await this.call(({ threads }) => threads.getState({ threadId, checkpointId }));
    return stateFromPb(await this.allTasks(threadId, response.state!));
  }

  /** `snapshot` with the tasks of its later pages (a state too large for one
   * response comes in several, each naming the next). */
  private async allTasks(threadId: string, snapshot: StateSnapshotPb): Promise<StateSnapshotPb> {
    const checkpointId = snapshot.config?.checkpointId ?? "";
    let tasksPageToken = snapshot.nextTasksPageToken;
    while (tasksPageToken) {
      const token = tasksPageToken;
      const response = await this.call(({ threads }) =>
        threads.getState({ threadId, checkpointId, tasksPageToken: token }),
      );
      snapshot.tasks.push(...response.state!.tasks);
      tasksPageToken = response.state!.nextTasksPageToken;
    }
    snapshot.nextTasksPageToken = "";
    return snapshot;
  }

  /**
   * Write `values` into a graph thread's state as if `asNode` returned them
   * (LangGraph's `updateState`); from an older `checkpointId` this forks a
   * new branch.
   */
  async updateState(
    threadId: string,
    values: JsonObject,
    { asNode = "", checkpointId = "" }: { asNode?: string; checkpointId?: string } = {},
  ): Promise<StateSnapshot> {
    const request = { threadId, values: toValue(values, "values"), asNode, checkpointId };
    // Sent again only when it surely did not run: a second fork would apply
    // the values twice.
    const response = await this.call(({ threads }) => threads.updateState(request), { repeatable: false });
    return stateFromPb(await this.allTasks(threadId, response.state!));
  }

  /** The thread's checkpoints, newest first. */
  async getStateHistory(
    threadId: string,
    { limit = 0, before = "", filter }: { limit?: number; before?: string; filter?: JsonObject } = {},
  ): Promise<StateSnapshot[]> {
    // `limit` counts the snapshots of all pages; the service keeps that count
    // in the page token.
    const snapshots: StateSnapshot[] = [];
    let pageToken = "";
    for (;;) {
      const token = pageToken;
      const response = await this.call(({ threads }) =>
        threads.getStateHistory({ threadId, limit, before, filter, pageToken: token }),
      );
      for (const state of response.states) snapshots.push(stateFromPb(await this.allTasks(threadId, state)));
      pageToken = response.nextPageToken;
      if (!pageToken) return snapshots;
    }
  }
}
