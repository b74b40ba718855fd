/**
 * Stream mode "messages": LLM tokens from inside tasks and entrypoints, as
 * langgraphjs's `[messageChunk, metadata]` pairs.
 *
 * On the worker. An assignment whose run streams messages (its
 * `streamMessages`) runs its body under a RunnableConfig, set through
 * @langchain/core's AsyncLocalStorage, whose callbacks hold a handler that
 * prefers streaming: every chat model the body calls streams its tokens, with
 * no change to the body, when @langchain/core is installed. Any other LLM
 * client writes its chunks with `writeMessageChunk`. Nothing is sent when the
 * run did not ask for the mode.
 *
 * On the wire. Each chunk is a TaskStreamChunk of STREAM_MODE_MESSAGES whose
 * data is `{ message, metadata }`. The message is the flat JSON form
 * LangGraph's server streams and the Python SDK writes: the message's fields
 * (`content`, `id`, `tool_call_chunks`, `usage_metadata`, ...) with its `type`
 * ("AIMessageChunk" for a token, "ai", "tool", ...). The metadata has
 * LangGraph's keys: `langgraph_node` (the task or entrypoint name), `tags`,
 * the chat model's `ls_*` keys, `thread_id`, `run_id`,
 * `langgraph_checkpoint_ns`; the service adds `langgraph_step`,
 * `langgraph_triggers` and `langgraph_path`.
 *
 * On the client. `messagePair` turns the data back into `[message,
 * metadata]`: an AIMessageChunk (or the message's class) when @langchain/core
 * can be imported, else the message's plain object.
 */

import { AsyncLocalStorage } from "node:async_hooks";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { current, type Execution } from "./context.js";
import { StreamMode } from "./gen/cairn/v1/run_pb.js";
import { TaskKind } from "./gen/cairn/v1/worker_service_pb.js";
import type { RunEvent } from "./types.js";
import { normalize } from "./values.js";

import type { LLMResult } from "@langchain/core/outputs";

type CallbacksBase = typeof import("@langchain/core/callbacks/base");
type Singletons = typeof import("@langchain/core/singletons");
type Messages = typeof import("@langchain/core/messages");

interface Core {
  callbacks: CallbacksBase;
  singletons: Singletons;
  messages: Messages;
  /** The handler class, made once @langchain/core is loaded. */
  Handler: HandlerClass;
}

type HandlerClass = new (execution: Execution, metadata: JsonObject) => object;

/** A chat model called with one of these tags is not streamed (as langgraphjs). */
const NOSTREAM_TAGS = new Set(["nostream", "langsmith:nostream"]);

/** The metadata keys that say where a body runs: an enclosing execution's
 * are not a nested body's. */
const POSITION_KEYS = new Set([
  "thread_id",
  "run_id",
  "langgraph_node",
  "langgraph_step",
  "langgraph_triggers",
  "langgraph_path",
  "langgraph_checkpoint_ns",
  "checkpoint_ns",
]);

let loading: Promise<Core | undefined> | undefined;

/** @langchain/core, once per process; undefined when it cannot be imported. */
function loadCore(): Promise<Core | undefined> {
  loading ??= (async () => {
    try {
      const [callbacks, singletons, messages] = await Promise.all([
        import("@langchain/core/callbacks/base"),
        import("@langchain/core/singletons"),
        import("@langchain/core/messages"),
      ]);
      // Set already when langgraphjs (or the application) did it first.
      singletons.AsyncLocalStorageProviderSingleton.initializeGlobalInstance(new AsyncLocalStorage());
      return { callbacks, singletons, messages, Handler: handlerClass(callbacks, messages) };
    } catch {
      return undefined;
    }
  })();
  return loading;
}

/**
 * Runs `body` so that the chat models it calls stream their tokens to
 * `execution`'s run, when the run asked for stream mode "messages" and
 * @langchain/core is installed; otherwise just runs it. `node` is the name
 * the chunks carry as `langgraph_node` (a graph's node name for its tasks).
 */
export async function streamingMessages<T>(
  execution: Execution,
  body: () => T | Promise<T>,
  node: string = execution.name,
): Promise<T> {
  if (!execution.assignment.streamMessages) return body();
  const core = await loadCore();
  if (core === undefined) return body();
  const metadata = baseMetadata(execution, node);
  const provider = core.singletons.AsyncLocalStorageProviderSingleton;
  const handler = new core.Handler(execution, metadata);
  const outer = (provider.getRunnableConfig() ?? {}) as Record<string, unknown>;
  const config = {
    ...outer,
    callbacks: withHandler(outer.callbacks, handler, core.Handler),
    metadata: { ...withoutPosition(outer.metadata), ...metadata },
  };
  return provider.runWithConfig(config, body);
}

/** The callbacks of an enclosing config with `handler` instead of any other
 * execution's. */
function withHandler(callbacks: unknown, handler: object, Handler: HandlerClass): unknown {
  if (callbacks === undefined || callbacks === null) return [handler];
  if (Array.isArray(callbacks)) return [...callbacks.filter((c) => !(c instanceof Handler)), handler];
  const manager = (callbacks as { copy(): CallbackManagerLike }).copy();
  for (const other of manager.handlers.filter((h) => h instanceof Handler)) manager.removeHandler(other);
  manager.addHandler(handler, true);
  return manager;
}

interface CallbackManagerLike {
  handlers: object[];
  removeHandler(handler: object): void;
  addHandler(handler: object, inherit?: boolean): void;
}

function withoutPosition(metadata: unknown): Record<string, unknown> {
  if (typeof metadata !== "object" || metadata === null) return {};
  return Object.fromEntries(Object.entries(metadata).filter(([key]) => !POSITION_KEYS.has(key)));
}

/** The metadata every chunk of `execution` carries (before the model's keys). */
function baseMetadata(execution: Execution, node: string): JsonObject {
  const assignment = execution.assignment;
  const namespace = [...assignment.path, `${node}:${assignment.taskId}`].join("|");
  const metadata: JsonObject = {
    thread_id: assignment.threadId,
    run_id: assignment.runId,
    langgraph_node: node,
    langgraph_checkpoint_ns: namespace,
    checkpoint_ns: namespace,
  };
  if (assignment.kind === TaskKind.ENTRYPOINT) {
    // The service knows where tasks stand; an entrypoint is always what the
    // run's input started.
    metadata.langgraph_triggers = ["__start__"];
    metadata.langgraph_path = ["__pregel_pull", node];
  }
  return metadata;
}

function handlerClass(callbacks: CallbacksBase, messages: Messages): HandlerClass {
  /** Sends each chunk a chat model streams, with LangGraph's metadata; a
   * model that did not stream sends its whole message when it ends. */
  class ChatModelTokens extends callbacks.BaseCallbackHandler {
    name = "cairn_stream_messages";
    /** Read by chat models: with this handler they call `_streamResponseChunks`. */
    lc_prefer_streaming = true;
    private readonly runs = new Map<string, JsonObject>();
    private readonly streamed = new Set<string>();

    constructor(
      private readonly execution: Execution,
      private readonly metadata: JsonObject,
    ) {
      // Awaited by the model: chunks go in order, and before the body ends.
      super({ _awaitHandler: true });
    }

    /** One handler per execution: a copy is the same handler. */
    override copy(): this {
      return this;
    }

    override handleChatModelStart(
      _llm: unknown,
      _messages: unknown,
      runId: string,
      _parentRunId?: string,
      _extraParams?: Record<string, unknown>,
      tags?: string[],
      metadata?: Record<string, unknown>,
    ): void {
      if (tags?.some((tag) => NOSTREAM_TAGS.has(tag))) return;
      const own = (tags ?? []).filter((tag) => !tag.startsWith("seq:step"));
      // The model's keys (ls_*, and metadata given to this call) over the task's.
      const merged = { ...this.metadata, ...jsonObject(metadata), tags: own };
      this.runs.set(runId, merged);
    }

    override handleLLMNewToken(
      token: string,
      _idx: unknown,
      runId: string,
      _parentRunId?: string,
      _tags?: string[],
      fields?: { chunk?: unknown },
    ): void {
      const metadata = this.runs.get(runId);
      if (metadata === undefined) return;
      this.streamed.add(runId);
      const chunk = (fields?.chunk as { message?: unknown } | undefined)?.message;
      const message = messages.isBaseMessage(chunk) ? chunk : new messages.AIMessageChunk({ content: token });
      this.send(message, metadata, runId);
    }

    override handleLLMEnd(output: LLMResult, runId: string): void {
      const metadata = this.runs.get(runId);
      this.runs.delete(runId);
      const streamed = this.streamed.delete(runId);
      if (metadata === undefined || streamed) return; // sent chunk by chunk already
      const generation = output.generations?.[0]?.[0] as { message?: unknown } | undefined;
      const message = generation?.message;
      if (messages.isBaseMessage(message)) this.send(message, metadata, runId);
    }

    override handleLLMError(_error: unknown, runId: string): void {
      this.runs.delete(runId);
      this.streamed.delete(runId);
    }

    private send(message: InstanceType<Messages["BaseMessage"]>, metadata: JsonObject, runId: string) {
      // A reply's chunks share an id, as LangGraph's (langgraphjs's `run-<id>`).
      const json = messageJson(message);
      json.id ??= `run-${runId}`;
      this.execution.write({ message: json, metadata }, StreamMode.MESSAGES);
    }
  }
  return ChatModelTokens as unknown as HandlerClass;
}

/** `value` as a JSON object: anything JSON lacks as its text. */
function jsonObject(value: unknown): JsonObject {
  if (value === undefined || value === null) return {};
  return JSON.parse(
    JSON.stringify(value, (_key, item) => (typeof item === "bigint" ? String(item) : item)),
  ) as JsonObject;
}

interface MessageLike {
  type?: unknown;
  toDict?: () => { type: string; data: Record<string, unknown> };
  constructor: { lc_name?: () => string };
}

/** A message as the wire's JSON: its fields with its `type` (the class name
 * for chunks, as Python's `model_dump` gives it). */
function messageJson(message: unknown): JsonObject {
  const like = message as MessageLike;
  if (typeof like.toDict !== "function") {
    throw new TypeError("a message chunk is a string, an object or a @langchain/core message");
  }
  const { type, data } = like.toDict();
  const name = like.constructor.lc_name?.();
  const json = jsonObject(data);
  json.type = name?.endsWith("Chunk") ? name : type;
  return json;
}

/** Options of `writeMessageChunk`. */
export interface MessageChunkOptions {
  /** The message the chunk is part of: chunks that share an id form one
   * message, as in LangGraph. Default: one id per task attempt. */
  id?: string;
  /** Added to the pair's metadata (the node name, tags, ... are there already). */
  metadata?: Record<string, unknown>;
}

/**
 * Stream an LLM token (or a whole message) to the clients that asked for
 * stream mode "messages", from inside a task or an entrypoint. For LLM
 * clients other than @langchain/core chat models, which stream by
 * themselves. Does nothing when the run did not ask for the mode.
 *
 * `chunk` is the text of a token, a @langchain/core message (or chunk), or a
 * message as an object of its fields (`{ type: "AIMessageChunk", content }`).
 *
 *     const answer = task("answer", async (question: string) => {
 *       let text = "";
 *       for await (const event of await openai.chat.completions.create({ ..., stream: true })) {
 *         const token = event.choices[0]?.delta?.content ?? "";
 *         writeMessageChunk(token, { id: event.id, metadata: { ls_provider: "openai" } });
 *         text += token;
 *       }
 *       return text;
 *     });
 */
export function writeMessageChunk(chunk: unknown, options: MessageChunkOptions = {}): void {
  const execution = current();
  if (!execution.assignment.streamMessages) return;
  let message: JsonObject;
  if (typeof chunk === "string") {
    message = { type: "AIMessageChunk", content: chunk };
  } else if (typeof (chunk as MessageLike | null)?.toDict === "function") {
    message = messageJson(chunk);
  } else if (typeof chunk === "object" && chunk !== null) {
    message = { type: "AIMessageChunk", ...(normalize(chunk, "message chunk") as JsonObject) };
  } else {
    throw new TypeError("a message chunk is a string, an object or a @langchain/core message");
  }
  if (options.id !== undefined) message.id = options.id;
  message.id ??= `run-${execution.taskId}-${execution.assignment.attempt}`;
  const metadata = {
    ...baseMetadata(execution, execution.name),
    tags: [],
    ...jsonObject(options.metadata),
  };
  execution.write({ message, metadata }, StreamMode.MESSAGES);
}

// --- the client's side -------------------------------------------------------------

/** `[message, metadata]`, as langgraphjs's `stream(..., { streamMode: "messages" })`
 * yields it: the message an AIMessageChunk (or its class) when @langchain/core
 * can be imported, else its plain object. */
export type MessageTuple = [message: unknown, metadata: JsonObject];

const CHUNK_CLASSES = [
  "AIMessageChunk",
  "HumanMessageChunk",
  "SystemMessageChunk",
  "ToolMessageChunk",
  "FunctionMessageChunk",
  "ChatMessageChunk",
] as const;

/** The pair of a messages chunk's data (see MessageTuple). */
export async function messagePair(data: JsonValue): Promise<MessageTuple> {
  const isObject = typeof data === "object" && data !== null && !Array.isArray(data);
  const object = (isObject ? data : {}) as JsonObject;
  const metadata = (object.metadata ?? {}) as JsonObject;
  const message = object.message ?? null;
  if (typeof message !== "object" || message === null || Array.isArray(message)) {
    return [message, metadata];
  }
  const core = await loadCore();
  if (core === undefined) return [message, metadata];
  const { type, ...fields } = message;
  try {
    const chunkClass = CHUNK_CLASSES.find((name) => name === type);
    if (chunkClass !== undefined) {
      const Chunk = core.messages[chunkClass] as unknown as new (fields: object) => unknown;
      return [new Chunk(fields), metadata];
    }
    const stored = { type: String(type), data: { content: "", ...fields } };
    return [core.messages.mapStoredMessageToChatMessage(stored as never), metadata];
  } catch {
    return [message, metadata]; // a type or fields @langchain/core does not know
  }
}

/** `event` with the data of a "messages" chunk as its MessageTuple. */
export async function withMessagePair(event: RunEvent): Promise<RunEvent> {
  if (event.mode !== "messages") return event;
  // RunEvent.data is typed as JSON; for this mode it holds the pair.
  return { ...event, data: (await messagePair(event.data)) as unknown as JsonValue };
}
