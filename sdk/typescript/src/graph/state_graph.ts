/**
 * langgraphjs's `StateGraph`, compiled into a graph the Cairn service runs:
 *
 *     const State = Annotation.Root({
 *       topic: Annotation<string>,
 *       notes: Annotation<string[]>({ reducer: append, default: () => [] }),
 *     });
 *
 *     const graph = new StateGraph(State)
 *       .addNode("research", async (state) => ({ notes: [`facts about ${state.topic}`] }))
 *       .addNode("write", async () => ({ notes: ["a draft"] }))
 *       .addEdge(START, "research")
 *       .addEdge("research", "write")
 *       .addEdge("write", END)
 *       .compile({ name: "essay" });
 *
 * Serve it with `new Worker({ functions: [graph] })` and run it with
 * `client.invoke(graph, { topic: "cats" }, { threadId: "1" })`. The service
 * runs the supersteps and applies the reducers; every node and router runs on
 * a worker as a task: node N of graph G is the task "G:N", the i-th
 * conditional edge leaving S is "G:S:route<i>".
 */

import type { RunnableConfig } from "../context.js";
import type { Command, RetryPolicy } from "../types.js";
import {
  AnnotationRoot,
  channelsOf,
  type ChannelInfo,
  type StateDefinition,
  type StateType,
  type UpdateType,
} from "./annotation.js";
import {
  CompiledStateGraph,
  RemoteGraph,
  type GraphDefinition,
  type NodeDefinition,
} from "./compiled.js";
import { END, START, type Send } from "./constants.js";

/** What a node may return: an update, nothing, or a Command. */
export type NodeReturn<Update> = Update | Command | null | undefined | void;

/** A node: a function of the state (or of a Send's args) and the config, or
 * anything with such an `invoke` (a Runnable). */
export type NodeAction<Input, Update> =
  | ((input: Input, config: RunnableConfig) => NodeReturn<Update> | Promise<NodeReturn<Update>>)
  | { invoke(input: Input, config: RunnableConfig): NodeReturn<Update> | Promise<NodeReturn<Update>> };

/** What a router may return: node names, Sends, or keys of its path map. */
export type BranchPathReturnValue = string | number | boolean | Send | (string | Send)[];

/** A router of a conditional edge. */
export type RouterAction<State> =
  | ((state: State, config: RunnableConfig) => BranchPathReturnValue | Promise<BranchPathReturnValue>)
  | { invoke(state: State, config: RunnableConfig): BranchPathReturnValue | Promise<BranchPathReturnValue> };

/** Options of `addNode`, as langgraphjs's. */
export interface AddNodeOptions {
  /** Retries of the node's task (not for a subgraph node). */
  retryPolicy?: RetryPolicy;
  /** The nodes a Command returned by this node may go to. */
  ends?: string[];
  /** Kept for langgraphjs compatibility; not sent to the service. */
  metadata?: Record<string, unknown>;
  /** Kept for langgraphjs compatibility: a compiled graph is found by itself. */
  subgraphs?: unknown[];
}

const UNSUPPORTED_NODE_OPTIONS: Record<string, string> = {
  input: "a node reads the whole state (or its Send's args); a per-node input schema is not supported",
  defer: "deferred nodes are not supported by the Cairn service",
  cachePolicy: "node caching is not supported by the Cairn service",
  errorHandler: "node error handlers are not supported; catch the error in the node",
  timeout: "give the node's work to a task with timeouts (task({ name, timeouts }, fn))",
};

/** Options of `compile`. */
export interface CompileOptions {
  /** The graph's name: the run target, and the prefix of its node tasks. Default "LangGraph". */
  name?: string;
  /** Stop before these nodes run (breakpoints), or "*" for all. */
  interruptBefore?: string[] | "*";
  /** Stop after these nodes ran, or "*" for all. */
  interruptAfter?: string[] | "*";
  /** Kept for langgraphjs compatibility. */
  description?: string;
}

/** The constructor's object form, as langgraphjs's. */
export interface StateGraphInit<SD extends StateDefinition> {
  state?: AnnotationRoot<SD>;
  /** @deprecated as in langgraphjs: use `state`. */
  stateSchema?: AnnotationRoot<SD>;
  /** The keys a run's input may write. */
  input?: AnnotationRoot<any>;
  /** The keys of a run's output. */
  output?: AnnotationRoot<any>;
}

const INIT_KEYS = new Set(["state", "stateSchema", "input", "output"]);

function isInit(value: unknown): value is StateGraphInit<StateDefinition> {
  if (value === null || typeof value !== "object" || value instanceof AnnotationRoot) return false;
  const entries = Object.entries(value);
  return (
    entries.length > 0 &&
    entries.every(
      ([key, item]) =>
        INIT_KEYS.has(key) &&
        (item === undefined || (item as { lc_graph_name?: unknown }).lc_graph_name === "AnnotationRoot"),
    )
  );
}

/**
 * A graph whose nodes read a shared state and return updates to it, as
 * langgraphjs's `StateGraph`. The state is an `Annotation.Root`; a key with a
 * reducer combines writes, the others keep the last value written.
 */
export class StateGraph<
  SD extends StateDefinition,
  S = StateType<SD>,
  U = UpdateType<SD>,
> {
  /** @internal */
  readonly definition: GraphDefinition;

  constructor(state: AnnotationRoot<SD> | SD, options?: { input?: AnnotationRoot<any>; output?: AnnotationRoot<any> });
  constructor(init: StateGraphInit<SD>);
  constructor(
    schema: AnnotationRoot<SD> | SD | StateGraphInit<SD>,
    options: { input?: AnnotationRoot<any>; output?: AnnotationRoot<any> } = {},
  ) {
    const init: StateGraphInit<StateDefinition> = isInit(schema)
      ? schema
      : { state: schema as AnnotationRoot<StateDefinition>, ...options };
    const state = init.state ?? init.stateSchema;
    const channels = new Map<string, ChannelInfo>();
    if (state !== undefined) {
      for (const [key, channel] of channelsOf(state)) channels.set(key, channel);
    } else if (init.input === undefined) {
      throw new TypeError("a StateGraph needs a state: new StateGraph(Annotation.Root({...}))");
    }
    const inputChannels: string[] = [];
    const outputChannels: string[] = [];
    for (const [schemaOf, names, what] of [
      [init.input, inputChannels, "the input schema"],
      [init.output, outputChannels, "the output schema"],
    ] as const) {
      if (schemaOf === undefined) continue;
      for (const [key, channel] of channelsOf(schemaOf, what)) {
        if (!channels.has(key)) channels.set(key, channel);
        names.push(key);
      }
    }
    this.definition = {
      channels,
      inputChannels,
      outputChannels,
      nodes: new Map(),
      edges: [],
      branches: [],
    };
  }

  /**
   * Add a node: `addNode("name", fn, options?)`, where `fn(state, config)`
   * returns an update, nothing, or a `Command`; a compiled graph (or a
   * `remoteGraph(name)`) as the action is a subgraph node. Also
   * `addNode({ a: fnA, b: fnB })` and `addNode([["a", fnA, options], ...])`.
   */
  addNode<Input = S>(name: string, action: NodeAction<Input, U> | CompiledStateGraph | RemoteGraph, options?: AddNodeOptions): this;
  addNode(nodes: Record<string, NodeAction<S, U> | CompiledStateGraph | RemoteGraph>): this;
  addNode(nodes: [name: string, action: NodeAction<any, U> | CompiledStateGraph | RemoteGraph, options?: AddNodeOptions][]): this;
  addNode(
    nameOrNodes:
      | string
      | Record<string, NodeAction<S, U> | CompiledStateGraph | RemoteGraph>
      | [string, NodeAction<any, U> | CompiledStateGraph | RemoteGraph, AddNodeOptions?][],
    action?: NodeAction<any, U> | CompiledStateGraph | RemoteGraph,
    options?: AddNodeOptions,
  ): this {
    const nodes =
      typeof nameOrNodes === "string"
        ? [[nameOrNodes, action, options] as const]
        : Array.isArray(nameOrNodes)
          ? nameOrNodes
          : Object.entries(nameOrNodes).map(([name, fn]) => [name, fn] as const);
    if (nodes.length === 0) throw new Error("No nodes provided in `addNode`");
    for (const [name, fn, opts] of nodes) this.addOne(name, fn, opts);
    return this;
  }

  private addOne(name: string, action: unknown, options: AddNodeOptions | undefined): void {
    const { channels, nodes } = this.definition;
    if (typeof name !== "string" || name === "") throw new TypeError("a node needs a name");
    if (channels.has(name)) {
      throw new Error(
        `${name} is already being used as a state attribute (a.k.a. a channel), cannot also be used as a node name.`,
      );
    }
    for (const reserved of ["|", ":"]) {
      if (name.includes(reserved)) {
        throw new Error(`"${reserved}" is a reserved character and is not allowed in node names.`);
      }
    }
    if (nodes.has(name)) throw new Error(`Node \`${name}\` already present.`);
    if (name === END || name === START) throw new Error(`Node \`${name}\` is reserved.`);
    for (const [option, why] of Object.entries(UNSUPPORTED_NODE_OPTIONS)) {
      if ((options as Record<string, unknown> | undefined)?.[option] !== undefined) {
        throw new TypeError(`node "${name}": option ${option}: ${why}`);
      }
    }
    const subgraph = action instanceof CompiledStateGraph || action instanceof RemoteGraph;
    if (subgraph && options?.retryPolicy !== undefined) {
      throw new TypeError(`subgraph node "${name}" takes no retryPolicy: its nodes retry by their own`);
    }
    if (!subgraph && typeof action !== "function" && typeof (action as { invoke?: unknown })?.invoke !== "function") {
      throw new TypeError(`node "${name}" must be a function, a compiled graph or a Runnable, not ${String(action)}`);
    }
    nodes.set(name, {
      name,
      action: action as NodeDefinition["action"],
      retryPolicy: options?.retryPolicy,
      ends: options?.ends ?? [],
    });
  }

  /** Run `end` after `start`; with an array of start nodes, after all of them
   * have run (a join). */
  addEdge(start: string | string[], end: string): this {
    if (typeof start === "string") {
      if (start === END) throw new Error("END cannot be a start node");
      if (end === START) throw new Error("START cannot be an end node");
      this.pushEdge([start], end);
      return this;
    }
    if (start.length === 0) throw new Error("addEdge needs at least one start node");
    for (const source of start) {
      if (source === END) throw new Error("END cannot be a start node");
      if (!this.definition.nodes.has(source)) throw new Error(`Need to add a node named "${source}" first`);
    }
    if (end === END) throw new Error("END cannot be an end node");
    if (!this.definition.nodes.has(end)) throw new Error(`Need to add a node named "${end}" first`);
    this.pushEdge([...start], end);
    return this;
  }

  private pushEdge(sources: string[], target: string): void {
    const same = (edge: { sources: string[]; target: string }) =>
      edge.target === target && edge.sources.join("\u001f") === sources.join("\u001f");
    if (!this.definition.edges.some(same)) this.definition.edges.push({ sources, target });
  }

  /**
   * After `source`, call `path(state, config)`, which returns a node name, a
   * `Send`, or an array of them (`END` to stop). `pathMap` maps its return
   * values to node names (an array of names maps each to itself). Also
   * `addConditionalEdges({ source, path, pathMap })`.
   */
  addConditionalEdges(
    source: string,
    path: RouterAction<S>,
    pathMap?: Record<string, string> | string[],
  ): this;
  addConditionalEdges(options: {
    source: string;
    path: RouterAction<S>;
    pathMap?: Record<string, string> | string[];
  }): this;
  addConditionalEdges(
    sourceOrOptions:
      | string
      | { source: string; path: RouterAction<S>; pathMap?: Record<string, string> | string[] },
    path?: RouterAction<S>,
    pathMap?: Record<string, string> | string[],
  ): this {
    const options =
      typeof sourceOrOptions === "string" ? { source: sourceOrOptions, path, pathMap } : sourceOrOptions;
    const router = options.path;
    if (typeof router !== "function" && typeof (router as { invoke?: unknown })?.invoke !== "function") {
      throw new TypeError(`the router of "${options.source}" must be a function, not ${String(router)}`);
    }
    let ends: Record<string, string> | undefined;
    if (options.pathMap !== undefined) {
      ends = Array.isArray(options.pathMap)
        ? Object.fromEntries(options.pathMap.map((name) => [name, name]))
        : { ...options.pathMap };
      for (const [key, target] of Object.entries(ends)) {
        if (typeof target !== "string") {
          throw new TypeError(
            `pathMap of "${options.source}" must map to node names, not ${JSON.stringify(key)} -> ${String(target)}`,
          );
        }
      }
    }
    this.definition.branches.push({
      source: options.source,
      path: router as RouterAction<unknown>,
      pathMap: ends,
    });
    return this;
  }

  /** Add nodes that run one after the other: `[["a", fnA], ["b", fnB]]` or `{ a: fnA, b: fnB }`. */
  addSequence(
    nodes:
      | [name: string, action: NodeAction<S, U> | CompiledStateGraph | RemoteGraph, options?: AddNodeOptions][]
      | Record<string, NodeAction<S, U> | CompiledStateGraph | RemoteGraph>,
  ): this {
    const entries = Array.isArray(nodes) ? nodes : Object.entries(nodes).map(([n, fn]) => [n, fn] as const);
    if (entries.length === 0) throw new Error("Sequence requires at least one node.");
    let previous: string | undefined;
    for (const [name, action, options] of entries) {
      if (this.definition.nodes.has(name)) {
        throw new Error(`Node names must be unique: node with the name "${name}" already exists.`);
      }
      this.addOne(name, action, options);
      if (previous !== undefined) this.addEdge(previous, name);
      previous = name;
    }
    return this;
  }

  /** Same as `addEdge(START, key)`. */
  setEntryPoint(key: string): this {
    return this.addEdge(START, key);
  }

  /** Same as `addEdge(key, END)`. */
  setFinishPoint(key: string): this {
    return this.addEdge(key, END);
  }

  /**
   * Check the graph and freeze it for a `Worker`. `interruptBefore` and
   * `interruptAfter` are breakpoints: node names, or "*" for all. The service
   * persists every graph (with the run's durability), so there is no
   * `checkpointer` to give.
   */
  compile(options: CompileOptions = {}): CompiledStateGraph<S, U> {
    for (const option of ["checkpointer", "store", "cache"]) {
      if ((options as Record<string, unknown>)[option] !== undefined) {
        throw new TypeError(
          `compile({ ${option} }): the Cairn service keeps the graph's checkpoints and memory; ` +
            `drop ${option} (run durability is chosen per run: client.invoke(graph, input, { durability }))`,
        );
      }
    }
    const name = options.name ?? "LangGraph";
    if (name === "" || name.includes(":")) {
      throw new Error(
        `graph name ${JSON.stringify(name)} must be non-empty and without ':' (its nodes are served as '<graph>:<node>')`,
      );
    }
    const interruptBefore = this.breakpoints(options.interruptBefore);
    const interruptAfter = this.breakpoints(options.interruptAfter);
    this.validate();
    return new CompiledStateGraph<S, U>(this.definition, { name, interruptBefore, interruptAfter });
  }

  private breakpoints(nodes: string[] | "*" | undefined): string[] {
    if (nodes === "*") return [...this.definition.nodes.keys()];
    for (const node of nodes ?? []) {
      if (!this.definition.nodes.has(node)) throw new Error(`Interrupt node \`${node}\` is not present`);
    }
    return [...new Set(nodes ?? [])];
  }

  /** langgraphjs's checks, with its messages. */
  private validate(): void {
    const { nodes, edges, branches } = this.definition;
    const sources = new Set<string>([...edges.flatMap((edge) => edge.sources), ...branches.map((b) => b.source)]);
    for (const source of sources) {
      if (source !== START && !nodes.has(source)) throw new Error(`Found edge starting at unknown node \`${source}\``);
    }
    if (!sources.has(START)) {
      throw new Error("Graph must have an entrypoint: add at least one edge from START to another node");
    }
    const targets = new Set<string>(edges.map((edge) => edge.target));
    for (const branch of branches) {
      if (branch.pathMap !== undefined) {
        for (const target of Object.values(branch.pathMap)) targets.add(target);
      } else {
        targets.add(END);
        for (const node of nodes.keys()) if (node !== branch.source) targets.add(node);
      }
    }
    for (const node of nodes.values()) for (const target of node.ends) targets.add(target);
    for (const node of nodes.keys()) {
      if (!targets.has(node)) {
        throw new Error(
          `Node \`${node}\` is not reachable.\n\nIf you are returning Command objects from your node,\n` +
            'make sure you are passing names of potential destination nodes as an "ends" array\n' +
            'into ".addNode(..., { ends: ["node1", "node2"] })".',
        );
      }
    }
    for (const target of targets) {
      if (target !== END && !nodes.has(target)) throw new Error(`Found edge ending at unknown node \`${target}\``);
    }
    for (const edge of edges) {
      if (edge.sources.length === 1 && edge.sources[0] === START && edge.target === END) {
        throw new Error("Cannot have an edge from START to END");
      }
    }
  }
}
