/**
 * A compiled StateGraph: the GraphSpec a worker registers (graph.proto) and
 * the node and router tasks it serves; and `remoteGraph(name)`, a graph that
 * another worker (in any language) registers, used as a subgraph.
 */

import { create } from "@bufbuild/protobuf";
import { current, type RunnableConfig } from "../context.js";
import type { Registration } from "../functional.js";
import {
  ChannelSpecSchema,
  ConditionalEdgeSpecSchema,
  EdgeSpecSchema,
  GraphSpecSchema,
  NodeSpecSchema,
  type GraphSpec,
} from "../gen/cairn/v1/graph_pb.js";
import { retryPolicyPb, type RetryPolicy } from "../types.js";
import { toValue } from "../values.js";
import type { ChannelInfo } from "./annotation.js";
import { encodeNodeResult, encodeRouterResult } from "./results.js";

type Callable = ((input: any, config: RunnableConfig) => unknown) | { invoke(input: any, config: RunnableConfig): unknown };

/** @internal A node as the builder keeps it. */
export interface NodeDefinition {
  readonly name: string;
  readonly action: Callable | CompiledStateGraph<any, any> | RemoteGraph;
  readonly retryPolicy: RetryPolicy | undefined;
  readonly ends: string[];
}

/** @internal A conditional edge as the builder keeps it. */
export interface BranchDefinition {
  readonly source: string;
  readonly path: Callable;
  readonly pathMap: Record<string, string> | undefined;
}

/** @internal What a StateGraph builder holds. */
export interface GraphDefinition {
  readonly channels: Map<string, ChannelInfo>;
  readonly inputChannels: string[];
  readonly outputChannels: string[];
  readonly nodes: Map<string, NodeDefinition>;
  readonly edges: { sources: string[]; target: string }[];
  readonly branches: BranchDefinition[];
}

function call(fn: Callable, input: unknown, config: RunnableConfig): unknown {
  return typeof fn === "function" ? fn(input, config) : fn.invoke(input, config);
}

/**
 * A graph registered by another worker, in any language, under `name`: a
 * subgraph node (`addNode("review", remoteGraph("review"))`) or a graph
 * called from inside a node (`await remoteGraph("review").invoke(input)`).
 * The service runs it with its own checkpoints, its nodes on the workers
 * that serve them; it must be registered before a graph naming it as a node.
 */
export class RemoteGraph<Input = unknown, Output = unknown> {
  constructor(readonly name: string) {
    if (typeof name !== "string" || name === "" || name.includes(":")) {
      throw new TypeError(`a graph name must be non-empty and without ':', not ${JSON.stringify(name)}`);
    }
  }

  /** Run the graph as a subgraph from inside a node (see CompiledStateGraph.invoke). */
  invoke(input: Input): Promise<Output> {
    return invokeGraph(this.name, input) as Promise<Output>;
  }
}

/** A graph registered by another worker: see RemoteGraph. */
export function remoteGraph<Input = unknown, Output = unknown>(name: string): RemoteGraph<Input, Output> {
  return new RemoteGraph(name);
}

function invokeGraph(name: string, input: unknown): Promise<unknown> {
  let execution;
  try {
    execution = current();
  } catch {
    throw new Error(
      `graph "${name}" is run by the Cairn service: from inside a node, await graph.invoke(input); ` +
        "elsewhere, client.invoke(graph, input, { threadId })",
    );
  }
  return execution.call(name, input, undefined);
}

/**
 * A checked StateGraph, ready to be served by a `Worker` under `name`; also
 * a run target: `client.invoke(graph, input, { threadId })`.
 */
export class CompiledStateGraph<State = unknown, Update = unknown> {
  readonly name: string;
  readonly interruptBefore: readonly string[];
  readonly interruptAfter: readonly string[];
  /** The spec the worker registers. */
  readonly spec: GraphSpec;
  /** @internal The node and router tasks, by task name. */
  readonly tasks = new Map<string, Registration>();
  /** The compiled graphs used as subgraph nodes (and theirs), served with this one, by name. */
  readonly subgraphs = new Map<string, CompiledStateGraph<any, any>>();
  declare readonly State: State;
  declare readonly Update: Update;

  /** @internal Made by StateGraph.compile(). */
  constructor(
    definition: GraphDefinition,
    options: { name: string; interruptBefore: string[]; interruptAfter: string[] },
  ) {
    this.name = options.name;
    this.interruptBefore = options.interruptBefore;
    this.interruptAfter = options.interruptAfter;
    const spec = create(GraphSpecSchema, {
      name: this.name,
      interruptBefore: options.interruptBefore,
      interruptAfter: options.interruptAfter,
      inputChannels: definition.inputChannels,
      outputChannels: definition.outputChannels,
    });
    for (const [name, channel] of definition.channels) {
      spec.channels.push(
        create(ChannelSpecSchema, {
          name,
          reducer: channel.reducer,
          default: channel.default === undefined ? undefined : toValue(channel.default),
        }),
      );
    }
    for (const node of definition.nodes.values()) {
      const action = node.action;
      if (action instanceof CompiledStateGraph || action instanceof RemoteGraph) {
        if (action.name === this.name) {
          throw new Error(
            `subgraph node "${node.name}" runs a graph named "${this.name}" like this one; compile the subgraph with its own name`,
          );
        }
        if (action instanceof CompiledStateGraph) this.addSubgraph(action);
        spec.nodes.push(
          create(NodeSpecSchema, { name: node.name, body: { case: "subgraph", value: action.name } }),
        );
        continue;
      }
      const taskName = `${this.name}:${node.name}`;
      const where = `node "${node.name}" of graph "${this.name}"`;
      this.tasks.set(taskName, {
        kind: "task",
        name: taskName,
        node: node.name,
        retry: node.retryPolicy,
        timeouts: undefined,
        execute: async (input, config) => encodeNodeResult(await call(action, input, config), where),
      });
      spec.nodes.push(
        create(NodeSpecSchema, {
          name: node.name,
          body: { case: "function", value: taskName },
          retryPolicy: node.retryPolicy ? retryPolicyPb(node.retryPolicy) : undefined,
        }),
      );
    }
    for (const edge of definition.edges) {
      spec.edges.push(create(EdgeSpecSchema, { sources: edge.sources, target: edge.target }));
    }
    const counts = new Map<string, number>();
    for (const branch of definition.branches) {
      const index = counts.get(branch.source) ?? 0;
      counts.set(branch.source, index + 1);
      const taskName = `${this.name}:${branch.source}:route${index}`;
      const where = `the router after "${branch.source}" in graph "${this.name}"`;
      this.tasks.set(taskName, {
        kind: "task",
        name: taskName,
        node: branch.source,
        retry: undefined,
        timeouts: undefined,
        execute: async (input, config) =>
          encodeRouterResult(await call(branch.path, input, config), branch.pathMap, where),
      });
      spec.conditionalEdges.push(
        create(ConditionalEdgeSpecSchema, {
          source: branch.source,
          router: taskName,
          pathMap: branch.pathMap ?? {},
        }),
      );
    }
    this.spec = spec;
  }

  private addSubgraph(graph: CompiledStateGraph<any, any>): void {
    for (const sub of [...graph.subgraphs.values(), graph]) {
      const known = this.subgraphs.get(sub.name);
      if (known !== undefined && known !== sub) {
        throw new Error(
          `two different subgraphs of "${this.name}" are named "${sub.name}"; compile each with its own name`,
        );
      }
      this.subgraphs.set(sub.name, sub);
    }
  }

  /** This graph and its subgraphs: what a worker serving it registers. */
  served(): CompiledStateGraph<any, any>[] {
    return [...this.subgraphs.values(), this];
  }

  /**
   * Run this graph as a subgraph from inside a node: resolves with its
   * output once it finished. An interrupt inside it pauses the run; on
   * resume the node runs again and the subgraph continues where it stopped.
   * Outside a node, run a graph with `client.invoke(graph, input, { threadId })`.
   */
  invoke(input: Partial<State> | Update | null): Promise<State> {
    return invokeGraph(this.name, input) as Promise<State>;
  }

  toString(): string {
    return `<graph ${this.name}>`;
  }
}
