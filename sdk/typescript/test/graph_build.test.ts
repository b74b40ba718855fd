/**
 * Building and compiling graphs, without a server: what a StateGraph refuses
 * (with langgraphjs's messages where it has them), the GraphSpec it encodes
 * (graph.proto), what nodes and routers send back, and the reducers' local
 * semantics.
 */

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Reducer } from "../src/gen/cairn/v1/graph_pb.js";
import { encodeNodeResult, encodeRouterResult } from "../src/graph/results.js";
import { fromValue } from "../src/values.js";
import {
  Annotation,
  Command,
  CompiledStateGraph,
  END,
  MessagesAnnotation,
  START,
  Send,
  StateGraph,
  add,
  append,
  merge,
  messagesStateReducer,
  remoteGraph,
  type ServiceReducer,
} from "../src/index.js";

const State = Annotation.Root({
  topic: Annotation<string>,
  notes: Annotation<string[]>({ reducer: append, default: () => [] }),
});

const noop = () => ({});

describe("state reducers", () => {
  test("a reducer of one's own is refused, naming the ones the service applies", () => {
    // A type error too (tsc checks this line): a plain function lacks the
    // brand of the service's reducers.
    // @ts-expect-error a reducer of one's own is not a ServiceReducer
    Annotation<string[]>({ reducer: (a: string[], b: string[]) => a.concat(b) });
    const concat = ((a: string[], b: string[]) => a.concat(b)) as unknown as ServiceReducer<string[]>;
    const Custom = Annotation.Root({ log: Annotation<string[]>({ reducer: concat, default: () => [] }) });
    assert.throws(
      () => new StateGraph(Custom),
      (error: Error) =>
        error instanceof TypeError &&
        /state key "log": reducer concat cannot be used: the Cairn service applies reducers/.test(error.message) &&
        /add, append, merge or messagesStateReducer/.test(error.message),
    );
  });

  test("named reducers map onto the service's; an unknown name is refused", () => {
    const Named = Annotation.Root({
      a: Annotation<number>({ reducer: "add" }),
      b: Annotation<string[]>({ reducer: "append", default: () => [] }),
      c: Annotation<Record<string, number>>({ reducer: merge, default: () => ({ x: 1 }) }),
      d: Annotation<string>(),
      e: Annotation<string>,
    });
    const graph = new StateGraph(Named).addNode("n", noop).addEdge(START, "n").compile({ name: "named" });
    assert.deepEqual(
      graph.spec.channels.map((c) => [c.name, c.reducer, c.default?.kind.case]),
      [
        ["a", Reducer.ADD, undefined],
        ["b", Reducer.APPEND, "listValue"],
        ["c", Reducer.MERGE, "structValue"],
        ["d", Reducer.LAST_VALUE, undefined],
        ["e", Reducer.LAST_VALUE, undefined],
      ],
    );
    assert.deepEqual(fromValue(graph.spec.channels[2].default), { x: 1 });
    const Unknown = Annotation.Root({ a: Annotation<number>({ reducer: "sum" as "add" }) });
    assert.throws(() => new StateGraph(Unknown), /unknown reducer "sum"; the named reducers are "last_value", "add"/);
  });

  test("a default that JSON cannot carry is refused", () => {
    const Bad = Annotation.Root({ a: Annotation<number[]>({ reducer: add, default: () => new Map() as never }) });
    assert.throws(() => new StateGraph(Bad), /the default of state key "a" is a Map, which is not JSON/);
  });

  test("zod schemas, reserved keys and langgraphjs reducers are refused with what to do", () => {
    const zodLike = { _def: {}, safeParse: () => undefined };
    assert.throws(() => new StateGraph(zodLike as never), /zod schema; declare it with Annotation.Root/);
    assert.throws(() => new StateGraph(Annotation.Root({ __cairn__: Annotation<string> })), /reserved/);
    const foreign = { lc_graph_name: "BinaryOperatorAggregate", operator: function messagesStateReducer() {} };
    assert.throws(
      () => new StateGraph(Annotation.Root({ messages: foreign as never })),
      /reducer messagesStateReducer cannot be used/,
    );
    const foreignLast = new StateGraph(Annotation.Root({ a: { lc_graph_name: "LastValue" } as never }))
      .addNode("n", noop)
      .addEdge(START, "n")
      .compile({ name: "foreign" });
    assert.equal(foreignLast.spec.channels[0].reducer, Reducer.LAST_VALUE);
  });

  test("the reducers compute here what the service does", () => {
    assert.equal(add(1, 2), 3);
    assert.equal(add("a", "b"), "ab");
    assert.deepEqual(add([1], [2]), [1, 2]);
    assert.throws(() => add(1 as number, "x" as unknown as number), /add applies to two numbers/);
    assert.deepEqual(append([1], [2, 3]), [1, 2, 3]);
    assert.deepEqual(append<unknown>([1], "x"), [1, "x"]);
    assert.deepEqual(merge({ a: 1, b: 2 }, { b: 3 }), { a: 1, b: 3 });
    assert.throws(() => merge({}, [] as never), /merge takes an object/);
    const messages = messagesStateReducer(
      [{ id: "1", content: "hi" }, { id: "2", content: "there" }],
      [{ id: "1", content: "hello" }, { id: "2", type: "remove" }, { content: "new" }],
    );
    assert.deepEqual(messages.slice(0, 1), [{ id: "1", content: "hello" }]);
    assert.equal(messages.length, 2);
    assert.equal(typeof messages[1].id, "string");
    assert.deepEqual(
      messagesStateReducer([{ id: "1" }], [{ id: "__remove_all__", type: "remove" }, { id: "3" }]),
      [{ id: "3" }],
    );
    assert.throws(
      () => messagesStateReducer([], { id: "9", type: "remove" }),
      /delete a message with an ID that doesn't exist/,
    );
  });
});

describe("the builder", () => {
  test("node names: reserved, duplicate, state keys and ':' are refused", () => {
    const graph = new StateGraph(State).addNode("a", noop);
    assert.throws(() => graph.addNode("a", noop), /Node `a` already present./);
    assert.throws(() => graph.addNode(END, noop), /Node `__end__` is reserved./);
    assert.throws(() => graph.addNode("x:y", noop), /":" is a reserved character/);
    assert.throws(() => graph.addNode("topic", noop), /topic is already being used as a state attribute/);
    assert.throws(() => graph.addNode("b", noop, { defer: true } as never), /option defer/);
    assert.throws(() => graph.addNode({}), /No nodes provided/);
  });

  test("edges: END as a start, START as an end, joins of unknown nodes", () => {
    const graph = new StateGraph(State).addNode("a", noop).addNode("b", noop);
    assert.throws(() => graph.addEdge(END, "a"), /END cannot be a start node/);
    assert.throws(() => graph.addEdge("a", START), /START cannot be an end node/);
    assert.throws(() => graph.addEdge(["a", "c"], "b"), /Need to add a node named "c" first/);
    assert.throws(() => graph.addEdge(["a", "b"], END), /END cannot be an end node/);
  });

  test("compile checks the graph as langgraphjs does", () => {
    assert.throws(
      () => new StateGraph(State).addNode("a", noop).compile(),
      /Graph must have an entrypoint/,
    );
    assert.throws(
      () => new StateGraph(State).addNode("a", noop).addEdge(START, "a").addEdge("a", "b").compile(),
      /Found edge ending at unknown node `b`/,
    );
    assert.throws(
      () => new StateGraph(State).addNode("a", noop).addEdge(START, "a").addEdge("z", "a").compile(),
      /Found edge starting at unknown node `z`/,
    );
    assert.throws(
      () => new StateGraph(State).addNode("a", noop).addNode("b", noop).addEdge(START, "a").compile(),
      /Node `b` is not reachable/,
    );
    // A Command's destinations count once named in `ends`.
    new StateGraph(State)
      .addNode("a", noop, { ends: ["b"] })
      .addNode("b", noop)
      .addEdge(START, "a")
      .compile({ name: "ends" });
    assert.throws(
      () => new StateGraph(State).addNode("a", noop).addEdge(START, "a").compile({ interruptBefore: ["b"] }),
      /Interrupt node `b` is not present/,
    );
    assert.throws(
      () => new StateGraph(State).addNode("a", noop).addEdge(START, "a").compile({ name: "a:b" }),
      /must be non-empty and without ':'/,
    );
    assert.throws(
      () =>
        new StateGraph(State)
          .addNode("a", noop)
          .addEdge(START, "a")
          .compile({ checkpointer: {} } as never),
      /the Cairn service keeps the graph's checkpoints/,
    );
  });

  test("the spec: channels, function and subgraph nodes, edges, joins, routers, breakpoints", () => {
    const sub = new StateGraph(State).addNode("s", noop).addEdge(START, "s").compile({ name: "sub" });
    const graph = new StateGraph({ state: State, input: Annotation.Root({ topic: Annotation<string> }) })
      .addNode("a", noop, { retryPolicy: { maxAttempts: 5, initialInterval: 100 } })
      .addNode("b", noop)
      .addNode("c", sub)
      .addNode("d", remoteGraph("py_review"))
      .addEdge(START, "a")
      .addEdge(START, "b")
      .addEdge(["a", "b"], "c")
      .addConditionalEdges("c", () => "d", { go: "d", stop: END })
      .addConditionalEdges("c", () => END)
      .addEdge("d", END)
      .compile({ name: "g", interruptBefore: "*", interruptAfter: ["c"] });
    const spec = graph.spec;
    assert.equal(spec.name, "g");
    assert.deepEqual(spec.inputChannels, ["topic"]);
    assert.deepEqual(spec.outputChannels, []);
    assert.deepEqual(
      spec.nodes.map((n) => [n.name, n.body.case, n.body.value]),
      [
        ["a", "function", "g:a"],
        ["b", "function", "g:b"],
        ["c", "subgraph", "sub"],
        ["d", "subgraph", "py_review"],
      ],
    );
    assert.equal(spec.nodes[0].retryPolicy?.maxAttempts, 5);
    assert.equal(spec.nodes[0].retryPolicy?.initialInterval?.nanos, 100_000_000);
    assert.deepEqual(
      spec.edges.map((e) => [e.sources, e.target]),
      [
        [["__start__"], "a"],
        [["__start__"], "b"],
        [["a", "b"], "c"],
        [["d"], "__end__"],
      ],
    );
    assert.deepEqual(
      spec.conditionalEdges.map((e) => [e.source, e.router, e.pathMap]),
      [
        ["c", "g:c:route0", { go: "d", stop: "__end__" }],
        ["c", "g:c:route1", {}],
      ],
    );
    assert.deepEqual(spec.interruptBefore, ["a", "b", "c", "d"]);
    assert.deepEqual(spec.interruptAfter, ["c"]);
    // Served with it: its node and router tasks, and the local subgraph.
    assert.deepEqual([...graph.tasks.keys()], ["g:a", "g:b", "g:c:route0", "g:c:route1"]);
    assert.deepEqual(graph.tasks.get("g:a")?.retry, { maxAttempts: 5, initialInterval: 100 });
    assert.deepEqual(
      graph.served().map((g) => g.name),
      ["sub", "g"],
    );
    assert.ok(graph instanceof CompiledStateGraph);
  });

  test("two subgraphs with one name, or a subgraph named like its parent, are refused", () => {
    const one = new StateGraph(State).addNode("s", noop).addEdge(START, "s").compile({ name: "same" });
    const two = new StateGraph(State).addNode("t", noop).addEdge(START, "t").compile({ name: "same" });
    assert.throws(
      () =>
        new StateGraph(State)
          .addNode("a", one)
          .addNode("b", two)
          .addEdge(START, "a")
          .addEdge(START, "b")
          .compile({ name: "parent" }),
      /two different subgraphs of "parent" are named "same"/,
    );
    assert.throws(
      () => new StateGraph(State).addNode("a", one).addEdge(START, "a").compile({ name: "same" }),
      /runs a graph named "same" like this one/,
    );
    assert.throws(
      () => new StateGraph(State).addNode("a", one, { retryPolicy: { maxAttempts: 2 } }),
      /takes no retryPolicy/,
    );
  });

  test("invoke() outside a node says how to run a graph", () => {
    const graph = new StateGraph(MessagesAnnotation).addNode("n", noop).addEdge(START, "n").compile({ name: "m" });
    assert.throws(() => graph.invoke({ messages: [] }), /client.invoke\(graph, input, \{ threadId \}\)/);
  });
});

describe("node and router results on the wire", () => {
  test("updates, null and Commands", () => {
    assert.equal(encodeNodeResult(undefined, "n"), null);
    assert.deepEqual(encodeNodeResult({ a: 1, skip: undefined }, "n"), { a: 1 });
    assert.deepEqual(
      encodeNodeResult(new Command({ update: { a: 1 }, goto: ["x", new Send("y", { i: 1 })] }), "n"),
      { __cairn__: "command", update: { a: 1 }, goto: ["x", { __cairn__: "send", node: "y", arg: { i: 1 } }] },
    );
    assert.deepEqual(encodeNodeResult(new Command({ goto: END }), "n"), {
      __cairn__: "command",
      update: {},
      goto: ["__end__"],
    });
    assert.throws(() => encodeNodeResult(new Command({ resume: 1 }), "node x"), /node x returned Command\(\{ resume \}\)/);
    assert.throws(
      () => encodeNodeResult(new Command({ update: [["a", 1], ["a", 2]] }), "n"),
      /writing "a" twice/,
    );
    assert.throws(() => encodeNodeResult({ __cairn__: "x" }, "n"), /reserved key/);
    assert.throws(() => encodeNodeResult([1], "n"), /returned an array; expected an object of state updates/);
    assert.throws(() => encodeNodeResult(new Command({ goto: new Send(END, 1) }), "n"), /cannot send a packet to the END node/);
  });

  test("router values: names, Sends, and path map keys as strings", () => {
    assert.deepEqual(encodeRouterResult("a", undefined, "r"), ["a"]);
    assert.deepEqual(encodeRouterResult([new Send("a", 1), END], undefined, "r"), [
      { __cairn__: "send", node: "a", arg: 1 },
      "__end__",
    ]);
    assert.deepEqual(encodeRouterResult(true, { true: "a", false: "b" }, "r"), ["true"]);
    assert.deepEqual(encodeRouterResult(2, { 2: "a" }, "r"), ["2"]);
    assert.throws(() => encodeRouterResult("c", { a: "a" }, "r"), /Branch condition returned unknown or null destination/);
    assert.throws(() => encodeRouterResult(END, { a: "a" }, "r"), /unknown or null destination/);
    assert.throws(() => encodeRouterResult(3, undefined, "r"), /expected a node name, END, a Send/);
    assert.throws(() => encodeRouterResult(START, undefined, "r"), /expected a node name/);
  });
});
