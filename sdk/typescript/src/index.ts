/**
 * Cairn TypeScript SDK: durable langgraphjs-style workflows on the Cairn service.
 *
 *     import { Client, Command, Worker, entrypoint, interrupt, sleep, task } from "@cairn/sdk";
 *
 * Workers serve `task`s and `entrypoint`s; clients run them on threads with
 * `client.invoke`, `client.stream` or `client.session`. An entrypoint waits
 * for a person with `interrupt` (for a while at most with its `timeout`),
 * and for time with `sleep` / `sleepUntil`.
 */

export { Client, Session } from "./client.js";
export type {
  ClientOptions,
  ConnectedWorker,
  ListRunsOptions,
  RunOptions,
  StreamOptions,
  Target,
} from "./client.js";
export {
  Abandoned,
  ChildInterrupted,
  GraphInterrupt,
  Sleeping,
  getConfig,
  getHeartbeatDetails,
  getPreviousState,
  getStore,
  getWriter,
  heartbeat,
  interrupt,
} from "./context.js";
export type { InterruptOptions, RunnableConfig } from "./context.js";
export type { CredentialOptions, TlsOptions } from "./credentials.js";
export {
  AlreadyExistsError,
  CairnError,
  FailedPreconditionError,
  InterruptTimeoutError,
  InvalidArgumentError,
  InvalidValueError,
  JsonTooDeepError,
  MAX_JSON_DEPTH,
  NonDeterministicError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  RunFailedError,
  RunNotFoundError,
  TaskFailedError,
  TaskTimeoutError,
  ThreadBusyError,
  ThreadNotFoundError,
  UnauthenticatedError,
  UnavailableError,
  UnimplementedError,
} from "./errors.js";
export {
  Entrypoint,
  EntrypointFinal,
  entrypoint,
  remoteTask,
  task,
} from "./functional.js";
export type { EntrypointOptions, Servable, Task, TaskOptions } from "./functional.js";
export { writeMessageChunk } from "./messages.js";
export type { MessageChunkOptions, MessageTuple } from "./messages.js";
export { Annotation, AnnotationRoot, MessagesAnnotation, StateChannel } from "./graph/annotation.js";
export type { SingleReducer, StateDefinition, StateType, UpdateType } from "./graph/annotation.js";
export { CompiledStateGraph, RemoteGraph, remoteGraph } from "./graph/compiled.js";
export { END, START, Send } from "./graph/constants.js";
export {
  REMOVE_ALL_MESSAGES,
  add,
  addMessages,
  append,
  merge,
  messagesStateReducer,
} from "./graph/reducers.js";
export type { JsonMessage, ReducerName, ServiceReducer } from "./graph/reducers.js";
export { StateGraph } from "./graph/state_graph.js";
export type {
  AddNodeOptions,
  BranchPathReturnValue,
  CompileOptions,
  NodeAction,
  NodeReturn,
  RouterAction,
  StateGraphInit,
} from "./graph/state_graph.js";
export { SchedulesClient } from "./schedules.js";
export type {
  CreateScheduleOptions,
  Schedule,
  ScheduleCaller,
  ScheduleCatchupPolicy,
  ScheduleFiring,
  ScheduleFiringState,
  ScheduleOverlapPolicy,
  ScheduleRpc,
  ScheduleThreadPolicy,
} from "./schedules.js";
export { sleep, sleepUntil } from "./sleep.js";
export { StoreClient } from "./store.js";
export type {
  EmbedFunction,
  StoreCaller,
  StoreEmbeddings,
  StoreGetOperation,
  StoreGetOptions,
  StoreIndexConfig,
  StoreItem,
  StoreListNamespacesOperation,
  StoreListNamespacesOptions,
  StoreOperation,
  StoreOperationResult,
  StoreOperationResults,
  StoreOptions,
  StorePutOperation,
  StorePutOptions,
  StoreSearchItem,
  StoreSearchOperation,
  StoreSearchOptions,
  StoreTtlConfig,
} from "./store.js";
export { Command, defaultRetryOn } from "./types.js";
export type {
  CheckpointConfig,
  Durability,
  MultitaskStrategy,
  ErrorDetails,
  Interrupt,
  PregelTask,
  RetryPolicy,
  Run,
  RunEvent,
  RunState,
  RunWaiting,
  StateSnapshot,
  StreamMode,
  TaskTimeouts,
  Thread,
  ThreadStatus,
  WaitReason,
} from "./types.js";
export { VERSION } from "./version.js";
export { Worker } from "./worker.js";
export type { WorkerOptions } from "./worker.js";
