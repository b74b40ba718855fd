/**
 * The names a graph's edges and results use, as langgraphjs's: `START`,
 * `END` and `Send`.
 */

/** The graph's entry: `addEdge(START, "first")`. */
export const START = "__start__";
/** Where a path stops: `addEdge("last", END)`, or a router returning END. */
export const END = "__end__";

/**
 * Run `node` with `args` as its input in the next step, as langgraphjs's
 * `Send`: return it from a router (or in a `Command`'s `goto`) to fan out,
 * one task per Send.
 *
 *     const fanOut = (state: typeof State.State) =>
 *       state.docs.map((doc) => new Send("summarize", { doc }));
 */
export class Send<Node extends string = string, Args = unknown> {
  readonly lg_name = "Send";

  constructor(
    readonly node: Node,
    readonly args: Args,
  ) {
    if (typeof node !== "string" || node === "") {
      throw new TypeError(`Send needs a node name, not ${JSON.stringify(node)}`);
    }
  }

  toJSON(): { lg_name: string; node: string; args: Args } {
    return { lg_name: this.lg_name, node: this.node, args: this.args };
  }
}

/** The key marking the node results and router items that are not plain
 * state updates (graph.proto's NodeSpec). */
export const MARK = "__cairn__";
