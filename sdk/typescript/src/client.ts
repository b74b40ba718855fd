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
 */

import { createClient, type Client as RpcClient } from "@connectrpc/connect";
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { RunFailedError, fromRpcError } from "./errors.js";
import { RunState as RunStatePb } from "./gen/cairn/v1/run_pb.js";
import { ThreadStatus as ThreadStatusPb } from "./gen/cairn/v1/thread_pb.js";
import {
  RunService,
  type SessionRequestSchema,
  type StreamRequestSchema,
} from "./gen/cairn/v1/run_service_pb.js";
import { ThreadService } from "./gen/cairn/v1/thread_service_pb.js";
import { AsyncQueue } from "./queue.js";
import { connect, type Connection } from "./transport.js";
import {
  Command,
  durabilityPb,
  runEventFromPb,
  runFromPb,
  runStatePb,
  stateFromPb,
  streamModePb,
  threadFromPb,
  threadStatusPb,
  type Durability,
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
  /** Makes a retried request attach to the run the first one started. */
  requestId?: string;
  /** Create the thread when it does not exist. Default true. */
  createThread?: boolean;
  /** Start from this older checkpoint instead of the latest (time travel). */
  checkpointId?: string;
}

export interface StreamOptions extends RunOptions {
  /** Stream modes to record and stream. Default "updates". */
  streamMode?: StreamMode | StreamMode[];
  /** Also yield chunks of subgraphs and nested workflows (a non-empty
   * namespace), as langgraphjs's `stream(..., { subgraphs: true })`. */
  subgraphs?: boolean;
}

export interface ClientOptions {
  /** host:port of the service. Default 127.0.0.1:50051. */
  address?: string;
  /** Deadline of unary calls, ms. */
  timeoutMs?: number;
}

type StartFields = MessageInitShape<typeof StreamRequestSchema>;

function startFields(target: Target | undefined, input: unknown, options: StreamOptions) {
  const fields: StartFields = {
    threadId: options.threadId,
    target: target === undefined ? "" : typeof target === "string" ? target : target.name,
    metadata: options.metadata,
    requestId: options.requestId ?? "",
    createThread: options.createThread ?? true,
    checkpointId: options.checkpointId ?? "",
  };
  if (options.durability !== undefined) fields.durability = durabilityPb(options.durability);
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
      const event = runEventFromPb(response.event);
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
 */
export class Session implements AsyncIterable<RunEvent> {
  /** The interrupts of the latest run that stopped at one. */
  interrupts: Interrupt[] = [];
  private readonly stream: AsyncGenerator<RunEvent>;

  constructor(
    responses: AsyncIterable<{ event?: Parameters<typeof runEventFromPb>[0] }>,
    private readonly requests: AsyncQueue<MessageInitShape<typeof SessionRequestSchema>>,
    subgraphs = false,
  ) {
    this.stream = events(responses, subgraphs);
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

/** Client of the Cairn service. Call `close()` when done. */
export class Client {
  readonly address: string;
  private readonly connection: Connection;
  private readonly runs: RpcClient<typeof RunService>;
  private readonly threads: RpcClient<typeof ThreadService>;
  private readonly timeoutMs: number | undefined;

  constructor(options: ClientOptions | string = {}) {
    const opts = typeof options === "string" ? { address: options } : options;
    this.address = opts.address ?? "127.0.0.1:50051";
    this.timeoutMs = opts.timeoutMs;
    this.connection = connect(this.address);
    this.runs = createClient(RunService, this.connection.transport);
    this.threads = createClient(ThreadService, this.connection.transport);
  }

  close(): void {
    this.connection.close();
  }

  private async call<T>(promise: () => Promise<T>): Promise<T> {
    try {
      return await promise();
    } catch (error) {
      throw fromRpcError(error);
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
    const response = await this.call(() =>
      this.runs.invoke(request, { timeoutMs: this.timeoutMs }),
    );
    const run = runFromPb(response.run!);
    if (run.state === "failed") throw new RunFailedError(run);
    return run;
  }

  /**
   * Run `target` and yield its events: chunks of the chosen stream modes and
   * lifecycle events. After a disconnect, continue with
   * `join(runId, { afterEventId: lastEvent.eventId })`.
   */
  stream(target: Target | undefined, input: unknown, options: StreamOptions): AsyncGenerator<RunEvent> {
    const request = startFields(target, input, options);
    return events(this.runs.stream(request), options.subgraphs);
  }

  /** Yield a run's events after `afterEventId`, live while it runs. */
  join(
    runId: string,
    { afterEventId = 0, subgraphs = false }: { afterEventId?: number; subgraphs?: boolean } = {},
  ): AsyncGenerator<RunEvent> {
    return events(this.runs.joinRun({ runId, afterEventId: BigInt(afterEventId) }), subgraphs);
  }

  /** Start an interactive session (see `Session`). */
  session(target: Target | undefined, input: unknown, options: StreamOptions): Session {
    const { requestId: _, ...start } = options;
    const requests = new AsyncQueue<MessageInitShape<typeof SessionRequestSchema>>();
    requests.push({ kind: { case: "start", value: startFields(target, input, start) } });
    return new Session(this.runs.session(requests), requests, options.subgraphs);
  }

  async getRun(runId: string): Promise<Run> {
    const response = await this.call(() => this.runs.getRun({ runId }, { timeoutMs: this.timeoutMs }));
    return runFromPb(response.run!);
  }

  /** A thread's runs, newest first. */
  async listRuns(threadId: string, { state, limit = 100 }: { state?: RunState; limit?: number } = {}) {
    const runs: Run[] = [];
    let pageToken = "";
    while (runs.length < limit) {
      const response = await this.call(() =>
        this.runs.listRuns({
          threadId,
          pageSize: Math.min(PAGE, limit - runs.length),
          pageToken,
          state: state ? runStatePb(state) : RunStatePb.UNSPECIFIED,
        }),
      );
      runs.push(...response.runs.map(runFromPb));
      pageToken = response.nextPageToken;
      if (!pageToken) break;
    }
    return runs;
  }

  async cancelRun(runId: string): Promise<Run> {
    const response = await this.call(() => this.runs.cancelRun({ runId }));
    return runFromPb(response.run!);
  }

  // --- threads ------------------------------------------------------------------------

  async createThread(threadId = "", { metadata }: { metadata?: JsonObject } = {}): Promise<Thread> {
    const response = await this.call(() => this.threads.createThread({ threadId, metadata }));
    return threadFromPb(response.thread!);
  }

  async getThread(threadId: string): Promise<Thread> {
    const response = await this.call(() => this.threads.getThread({ threadId }));
    return threadFromPb(response.thread!);
  }

  /** Threads newest first, filtered by top-level metadata and status. */
  async listThreads(
    { metadata, status, limit = 100 }: { metadata?: JsonObject; status?: ThreadStatus; limit?: number } = {},
  ): Promise<Thread[]> {
    const threads: Thread[] = [];
    let pageToken = "";
    while (threads.length < limit) {
      const response = await this.call(() =>
        this.threads.listThreads({
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
    await this.call(() => this.threads.deleteThread({ threadId }));
  }

  /** The thread's state at its latest checkpoint (or at `checkpointId`). */
  async getState(threadId: string, { checkpointId = "" } = {}): Promise<StateSnapshot> {
    const response = await this.call(() => this.threads.getState({ threadId, checkpointId }));
    return stateFromPb(response.state!);
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
    const response = await this.call(() =>
      this.threads.updateState({ threadId, values: toValue(values, "values"), asNode, checkpointId }),
    );
    return stateFromPb(response.state!);
  }

  /** The thread's checkpoints, newest first. */
  async getStateHistory(
    threadId: string,
    { limit = 0, before = "", filter }: { limit?: number; before?: string; filter?: JsonObject } = {},
  ): Promise<StateSnapshot[]> {
    const response = await this.call(() =>
      this.threads.getStateHistory({ threadId, limit, before, filter }),
    );
    return response.states.map(stateFromPb);
  }
}
