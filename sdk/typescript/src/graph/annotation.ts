/**
 * A graph's state, declared as langgraphjs's `Annotation.Root`: each key
 * keeps the last value written, or combines writes with a reducer the Cairn
 * service applies (see reducers.ts).
 *
 *     const State = Annotation.Root({
 *       topic: Annotation<string>,
 *       notes: Annotation<string[]>({ reducer: append, default: () => [] }),
 *     });
 *     type S = typeof State.State;   // { topic: string; notes: string[] }
 */

import type { JsonValue } from "@bufbuild/protobuf";
import { Reducer } from "../gen/cairn/v1/graph_pb.js";
import { normalize } from "../values.js";
import { MARK } from "./constants.js";
import {
  messagesStateReducer,
  serviceReducer,
  type JsonMessage,
  type ReducerName,
  type ServiceReducer,
} from "./reducers.js";

/** One key of the state: its reducer and default, with the types of its value
 * and of what nodes write to it. */
export class StateChannel<Value = unknown, Update = Value> {
  readonly lc_graph_name = "CairnStateChannel";
  declare readonly ValueType: Value;
  declare readonly UpdateType: Update;

  constructor(
    /** The reducer as given: a ServiceReducer, a name, or undefined (last value). */
    readonly reducer: ServiceReducer<Value, Update> | ReducerName | undefined,
    /** Makes the key's value before any write (`default` of SingleReducer). */
    readonly makeDefault: (() => Value) | undefined,
  ) {}
}

/** A state key with a reducer, as langgraphjs's `SingleReducer`. */
export interface SingleReducer<Value, Update = Value> {
  /** One of add, append, merge, messagesStateReducer, or its name. */
  reducer: ServiceReducer<Value, Update> | ReducerName;
  /** The value before any write (called once, when the graph is built). */
  default?: () => Value;
}

/** The keys of a state: channels, or functions making one (`Annotation<T>`). */
export interface StateDefinition {
  [key: string]: StateChannel<any, any> | (() => StateChannel<any, any>);
}

type ValueOf<C> =
  C extends StateChannel<infer V, any> ? V : C extends () => StateChannel<infer V, any> ? V : never;
type UpdateOf<C> =
  C extends StateChannel<any, infer U> ? U : C extends () => StateChannel<any, infer U> ? U : never;

/** The state nodes receive. */
export type StateType<SD extends StateDefinition> = { [K in keyof SD]: ValueOf<SD[K]> };
/** What nodes return: some keys, each with its update type. */
export type UpdateType<SD extends StateDefinition> = { [K in keyof SD]?: UpdateOf<SD[K]> };

/** The state of a graph, made by `Annotation.Root(...)`. */
export class AnnotationRoot<SD extends StateDefinition> {
  readonly lc_graph_name = "AnnotationRoot";
  declare readonly State: StateType<SD>;
  declare readonly Update: UpdateType<SD>;

  constructor(readonly spec: SD) {}
}

interface AnnotationFunction {
  <Value, Update = Value>(annotation: SingleReducer<Value, Update>): StateChannel<Value, Update>;
  <Value>(): StateChannel<Value, Value>;
  Root: <SD extends StateDefinition>(spec: SD) => AnnotationRoot<SD>;
}

/**
 * A state key, as langgraphjs's `Annotation`: `Annotation<T>` (or
 * `Annotation<T>()`) keeps the last value written; `Annotation<T>({ reducer,
 * default })` combines writes with a reducer the service knows (add, append,
 * merge, messagesStateReducer). `Annotation.Root({...})` makes the state.
 */
export const Annotation: AnnotationFunction = Object.assign(
  function Annotation<Value, Update = Value>(annotation?: SingleReducer<Value, Update>) {
    if (annotation === undefined || annotation === null) {
      return new StateChannel<Value, Value>(undefined, undefined);
    }
    return new StateChannel<Value, Update>(annotation.reducer, annotation.default);
  },
  { Root: <SD extends StateDefinition>(spec: SD) => new AnnotationRoot(spec) },
) as AnnotationFunction;

/** langgraphjs's `MessagesAnnotation`: a `messages` key holding JSON messages
 * (`{ id, type, content }`) combined by messagesStateReducer. */
export const MessagesAnnotation = Annotation.Root({
  messages: Annotation<JsonMessage[], JsonMessage | JsonMessage[]>({
    reducer: messagesStateReducer,
    default: () => [],
  }),
});

/** A state key as the service's ChannelSpec needs it. */
export interface ChannelInfo {
  readonly reducer: Reducer;
  /** Unset: the key is absent until written. */
  readonly default?: JsonValue;
}

/** The channels of a state schema (an Annotation.Root or its spec); throws a
 * TypeError for a key the service cannot run. */
export function channelsOf(schema: unknown, what = "the state"): Map<string, ChannelInfo> {
  const spec = specOf(schema, what);
  const channels = new Map<string, ChannelInfo>();
  for (const [key, declared] of Object.entries(spec)) {
    if (key === MARK || key.startsWith("__")) {
      throw new TypeError(`"${key}" cannot be a state key: names starting with "__" are reserved`);
    }
    channels.set(key, channelInfo(key, declared));
  }
  return channels;
}

function specOf(schema: unknown, what: string): Record<string, unknown> {
  if (schema instanceof AnnotationRoot) return schema.spec;
  const named = (schema as { lc_graph_name?: unknown } | null)?.lc_graph_name;
  if (named === "AnnotationRoot") return (schema as { spec: Record<string, unknown> }).spec;
  if (isZod(schema)) {
    throw new TypeError(
      `${what} is a zod schema; declare it with Annotation.Root from @cairn/sdk, whose ` +
        "reducers the Cairn service applies",
    );
  }
  if (schema !== null && typeof schema === "object" && !Array.isArray(schema)) {
    return schema as Record<string, unknown>;
  }
  throw new TypeError(`${what} must be an Annotation.Root(...), not ${String(schema)}`);
}

function isZod(schema: unknown): boolean {
  const candidate = schema as { _def?: unknown; _zod?: unknown; safeParse?: unknown } | null;
  return (
    candidate !== null &&
    typeof candidate === "object" &&
    typeof candidate.safeParse === "function" &&
    (candidate._def !== undefined || candidate._zod !== undefined)
  );
}

function channelInfo(key: string, declared: unknown): ChannelInfo {
  // `Annotation<T>` (not called) and langgraphjs-style factories make their channel.
  const channel = typeof declared === "function" ? (declared as () => unknown)() : declared;
  let reducer: unknown;
  let makeDefault: unknown;
  if (channel instanceof StateChannel) {
    reducer = channel.reducer;
    makeDefault = channel.makeDefault;
  } else {
    // A channel of langgraphjs's own Annotation: its LastValue, or a reducer
    // channel whose operator must still be one the service knows.
    const foreign = channel as {
      lc_graph_name?: unknown;
      operator?: unknown;
      initialValueFactory?: unknown;
    } | null;
    if (foreign?.lc_graph_name === "LastValue") return { reducer: Reducer.LAST_VALUE };
    if (foreign?.lc_graph_name !== "BinaryOperatorAggregate") {
      throw new TypeError(
        `state key "${key}" must be declared with Annotation<T> or Annotation<T>({ reducer, default }), ` +
          `not ${String(declared)}`,
      );
    }
    reducer = foreign.operator;
    makeDefault = foreign.initialValueFactory;
  }
  if (reducer === undefined || reducer === null) return { reducer: Reducer.LAST_VALUE };
  const service = serviceReducer(key, reducer);
  if (makeDefault === undefined || makeDefault === null) return { reducer: service };
  if (typeof makeDefault !== "function") {
    throw new TypeError(`state key "${key}": default must be a function returning the value`);
  }
  return { reducer: service, default: normalize(makeDefault(), `the default of state key "${key}"`) };
}
