/**
 * The Graph API (StateGraph, Annotation, Send, Command, conditional edges,
 * interrupts, breakpoints, subgraphs) run by a real `cairn serve` process's
 * superstep engine, with the nodes and routers served by an in-process
 * TypeScript worker.
 */

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import {
  Annotation,
  Command,
  END,
  MessagesAnnotation,
  RunFailedError,
  START,
  Send,
  StateGraph,
  add,
  append,
  getConfig,
  interrupt,
  merge,
  task,
  type JsonMessage,
} from "../src/index.js";
import { serveFunctions, type Served } from "./served.js";

const runs = new Map<string, number>();
const count = (name: string) => runs.set(name, (runs.get(name) ?? 0) + 1);

// --- a chain: a last-value key and an appended log -------------------------------------

const ChainState = Annotation.Root({
  value: Annotation<number>,
  log: Annotation<string[], string | string[]>({ reducer: append, default: () => [] }),
});

const chain = new StateGraph(ChainState)
  .addNode("a", (state) => ({ value: state.value + 1, log: ["a"] }))
  .addNode("b", async (state) => ({ value: state.value * 2, log: "b" }))
  .addEdge(START, "a")
  .addEdge("a", "b")
  .addEdge("b", END)
  .compile({ name: "ts_chain" });

// --- a loop routed by a function, and routers with path maps ---------------------------

const LoopState = Annotation.Root({ count: Annotation<number> });

const loop = new StateGraph(LoopState)
  .addNode("inc", (state) => ({ count: state.count + 1 }))
  .addEdge(START, "inc")
  .addConditionalEdges("inc", (state) => (state.count < 3 ? "inc" : END))
  .compile({ name: "ts_loop" });

const RouteState = Annotation.Root({
  n: Annotation<number>,
  path: Annotation<string[]>({ reducer: append, default: () => [] }),
});

const routed = new StateGraph(RouteState)
  .addNode("check", () => ({ path: ["check"] }))
  .addNode("big", () => ({ path: ["big"] }))
  .addNode("small", () => ({ path: ["small"] }))
  .addNode("done", () => ({ path: ["done"] }))
  .addEdge(START, "check")
  // A path map from the router's values (booleans, compared as strings) to nodes.
  .addConditionalEdges("check", (state) => state.n > 10, { true: "big", false: "small" })
  // A path map given as the list of names the router may return.
  .addConditionalEdges({ source: "big", path: () => "done", pathMap: ["done", END] })
  .addConditionalEdges("small", () => END, ["done", END])
  .addEdge("done", END)
  .compile({ name: "ts_routed" });

const badRoute = new StateGraph(RouteState)
  .addNode("check", () => ({ path: ["check"] }))
  .addNode("other", () => ({ path: ["other"] }))
  .addEdge(START, "check")
  .addConditionalEdges("check", () => "other", { elsewhere: "other", stop: END })
  .compile({ name: "ts_bad_route" });

// --- Send fan-out, summed and appended --------------------------------------------------

const MapState = Annotation.Root({
  items: Annotation<number[]>,
  results: Annotation<number[]>({ reducer: add, default: () => [] }),
  total: Annotation<number>({ reducer: add, default: () => 0 }),
});

const mapReduce = new StateGraph(MapState)
  .addNode("square", (arg: { item: number }) => ({ results: [arg.item ** 2], total: arg.item }))
  .addConditionalEdges(START, (state) => state.items.map((item) => new Send("square", { item })))
  .addEdge("square", END)
  .compile({ name: "ts_map_reduce" });

// --- a join after two parallel nodes, one of which fails once ---------------------------

const JoinState = Annotation.Root({ log: Annotation<string[]>({ reducer: add, default: () => [] }) });

const parallel = new StateGraph(JoinState)
  .addNode("a", () => {
    count("a");
    return { log: ["a"] };
  })
  .addNode("b", () => {
    count("b");
    if (runs.get("b") === 1) throw new Error("b failed once");
    return { log: ["b"] };
  })
  .addNode("c", () => ({ log: ["c"] }))
  .addEdge(START, "a")
  .addEdge(START, "b")
  .addEdge(["a", "b"], "c")
  .addEdge("c", END)
  .compile({ name: "ts_parallel" });

// --- interrupt() inside a node, and a task called by a node -------------------------------

const AskState = Annotation.Root({
  name: Annotation<string>,
  greeting: Annotation<string>,
  answers: Annotation<string[]>({ reducer: append, default: () => [] }),
});

const greet = task("ts_graph_greet", async (name: string) => {
  count("greet");
  return `hello ${name}`;
});

const ask = new StateGraph(AskState)
  .addNode("greet", async (state) => ({ greeting: await greet(state.name) }))
  .addNode("ask", (state) => {
    count("ask");
    const first = interrupt<string>({ question: `${state.greeting}, first?` });
    const second = interrupt<string>({ question: "second?" });
    return { answers: [first, second] };
  })
  .addEdge(START, "greet")
  .addEdge("greet", "ask")
  .addEdge("ask", END)
  .compile({ name: "ts_ask" });

// --- two nodes interrupted in one step, resumed by interrupt id ---------------------------

const VoteState = Annotation.Root({ votes: Annotation<string[]>({ reducer: append, default: () => [] }) });

const vote = new StateGraph(VoteState)
  .addNode("alice", () => ({ votes: [`alice: ${interrupt<string>({ voter: "alice" })}`] }))
  .addNode("bob", () => ({ votes: [`bob: ${interrupt<string>({ voter: "bob" })} (${getConfig().configurable.attempt})`] }))
  .addEdge(START, "alice")
  .addEdge(START, "bob")
  .compile({ name: "ts_vote" });

// --- breakpoints ---------------------------------------------------------------------------

const StepState = Annotation.Root({ steps: Annotation<string[]>({ reducer: append, default: () => [] }) });

const breakpoints = new StateGraph(StepState)
  .addSequence([
    ["one", () => ({ steps: ["one"] })],
    ["two", () => ({ steps: ["two"] })],
    ["three", () => ({ steps: ["three"] })],
  ])
  .addEdge(START, "one")
  .addEdge("three", END)
  .compile({ name: "ts_breakpoints", interruptBefore: ["three"], interruptAfter: ["one"] });

// --- Command({ update, goto }) -----------------------------------------------------------

const TriageState = Annotation.Root({
  ticket: Annotation<string>,
  label: Annotation<string>,
  handled: Annotation<string[]>({ reducer: append, default: () => [] }),
});

const triage = new StateGraph(TriageState)
  .addNode(
    "triage",
    (state) =>
      state.ticket.includes("crash")
        ? new Command({ update: { label: "bug" }, goto: "fix" })
        : new Command({
            update: [["label", "question"]],
            goto: [new Send("answer", { about: state.ticket }), "log"],
          }),
    { ends: ["fix", "answer", "log"] },
  )
  .addNode("fix", (state) => ({ handled: [`fixed ${state.label}`] }))
  .addNode("answer", (arg: { about: string }) => ({ handled: [`answered ${arg.about}`] }))
  .addNode("log", () => ({ handled: ["logged"] }))
  .addEdge(START, "triage")
  .compile({ name: "ts_triage" });

// --- subgraphs: a compiled graph as a node, and a graph called inside a node ---------------

const ReviewState = Annotation.Root({
  draft: Annotation<string>,
  verdict: Annotation<string>,
  notes: Annotation<string>, // the subgraph's own key: never reaches the parent
});

const review = new StateGraph(ReviewState)
  .addSequence({
    read: (state: typeof ReviewState.State) => {
      count("review_read");
      return { notes: `read ${state.draft.length} chars` };
    },
    decide: (state: typeof ReviewState.State) => {
      count("review_decide");
      return { verdict: interrupt<string>({ draft: state.draft, notes: state.notes }) };
    },
  })
  .addEdge(START, "read")
  .compile({ name: "ts_review" });

const EssayState = Annotation.Root({
  topic: Annotation<string>,
  draft: Annotation<string>,
  verdict: Annotation<string>,
});

const essay = new StateGraph(EssayState)
  .addNode("write", (state) => {
    count("write");
    return { draft: `an essay about ${state.topic}` };
  })
  .addNode("review", review)
  .addNode("publish", (state) => ({ topic: `${state.topic} (${state.verdict})` }))
  .addEdge(START, "write")
  .addEdge("write", "review")
  .addEdge("review", "publish")
  .addEdge("publish", END)
  .compile({ name: "ts_essay_graph" });

const InnerState = Annotation.Root({ topic: Annotation<string>, answer: Annotation<string> });

const inner = new StateGraph(InnerState)
  .addNode("shout", (state) => {
    count("inner_shout");
    return { topic: state.topic.toUpperCase() };
  })
  .addNode("ask", (state) => {
    count("inner_ask");
    return { answer: interrupt<string>({ question: `about ${state.topic}?` }) };
  })
  .addEdge(START, "shout")
  .addEdge("shout", "ask")
  .addEdge("ask", END)
  .compile({ name: "ts_inner" });

const OuterState = Annotation.Root({ topic: Annotation<string>, result: Annotation<string> });

const outer = new StateGraph(OuterState)
  .addNode("call", async (state) => {
    count("outer_call");
    const out = await inner.invoke({ topic: state.topic });
    return { result: `${out.topic}: ${out.answer}` };
  })
  .addEdge(START, "call")
  .addEdge("call", END)
  .compile({ name: "ts_outer" });

// --- messages, merged objects, and input/output schemas -----------------------------------

const chat = new StateGraph(MessagesAnnotation)
  .addNode("bot", (state) => {
    const last = state.messages[state.messages.length - 1];
    return {
      messages: [
        { id: last.id, type: "human", content: String(last.content).trim() },
        { type: "ai", content: `you said ${String(last.content).trim()}` },
      ],
    };
  })
  .addNode("forget", (state) => ({
    messages: state.messages.filter((m) => m.type === "human").map((m): JsonMessage => ({ id: m.id, type: "remove" })),
  }))
  .addEdge(START, "bot")
  .addEdge("bot", "forget")
  .addEdge("forget", END)
  .compile({ name: "ts_chat" });

const Input = Annotation.Root({ question: Annotation<string> });
const Output = Annotation.Root({ answer: Annotation<string> });
const Scratch = Annotation.Root({
  question: Annotation<string>,
  answer: Annotation<string>,
  scores: Annotation<Record<string, number>>({ reducer: merge }),
});

const shaped = new StateGraph({ state: Scratch, input: Input, output: Output })
  .addNode("score", () => ({ scores: { a: 1, b: 2 } }))
  .addNode("rescore", () => ({ scores: { b: 3 } }))
  .addNode("respond", (state, config) => ({
    answer: `${state.question} -> ${Object.entries(state.scores).sort().join(" ")} (${config.configurable.thread_id})`,
  }))
  .addEdge(START, "score")
  .addEdge("score", "rescore")
  .addEdge("rescore", "respond")
  .addEdge("respond", END)
  .compile({ name: "ts_shaped" });

// --------------------------------------------------------------------------------------------

describe("the Graph API on the service's superstep engine", () => {
  let served: Served;

  before(async () => {
    served = await serveFunctions([
      chain,
      loop,
      routed,
      badRoute,
      mapReduce,
      parallel,
      greet,
      ask,
      breakpoints,
      vote,
      triage,
      essay,
      outer,
      inner,
      chat,
      shaped,
    ]);
  });
  after(async () => served?.stop());
  beforeEach(() => runs.clear());

  test("a chain applies its reducers and writes a checkpoint per step", async () => {
    const run = await served.client.invoke(chain, { value: 1 }, { threadId: "chain" });
    assert.deepEqual(run.output, { value: 4, log: ["a", "b"] });
    const history = await served.client.getStateHistory("chain");
    assert.deepEqual(
      history.map((s) => s.next),
      [[], ["b"], ["a"], ["__start__"]],
    );
    assert.deepEqual(history[1].values, { value: 2, log: ["a"] });
    assert.deepEqual(history[1].metadata.writes, { a: { value: 2, log: ["a"] } });
  });

  test("a conditional edge without a path map loops until its condition", async () => {
    const run = await served.client.invoke(loop, { count: 0 }, { threadId: "loop" });
    assert.deepEqual(run.output, { count: 3 });
  });

  test("path maps route by the router's values, as objects and as lists", async () => {
    const big = await served.client.invoke(routed, { n: 11 }, { threadId: "routed-big" });
    assert.deepEqual(big.output, { n: 11, path: ["check", "big", "done"] });
    const small = await served.client.invoke(routed, { n: 1 }, { threadId: "routed-small" });
    assert.deepEqual(small.output, { n: 1, path: ["check", "small"] });
  });

  test("a router value missing from its path map fails the run, as in langgraphjs", async () => {
    await assert.rejects(
      served.client.invoke(badRoute, { n: 1 }, { threadId: "bad-route" }),
      (error: RunFailedError) => {
        assert.ok(error instanceof RunFailedError);
        assert.match(error.run.error!.message, /Branch condition returned unknown or null destination/);
        assert.match(error.run.error!.message, /"other"/);
        return true;
      },
    );
  });

  test("Send fans out one task per item; add sums numbers and concatenates lists", async () => {
    const items = Array.from({ length: 30 }, (_, i) => i);
    const run = await served.client.invoke(mapReduce, { items }, { threadId: "map" });
    const output = run.output as { results: number[]; total: number };
    assert.deepEqual(output.results, items.map((i) => i ** 2));
    assert.equal(output.total, items.reduce((a, b) => a + b, 0));
  });

  test("a failed node re-runs alone on resume, and the join waits for it", async () => {
    await assert.rejects(served.client.invoke(parallel, {}, { threadId: "par" }), (error: RunFailedError) => {
      assert.equal(error.run.error?.type, "Error");
      assert.equal(error.run.error?.message, "b failed once");
      return true;
    });
    const state = await served.client.getState("par");
    assert.deepEqual(state.next, ["b"]);
    assert.deepEqual(Object.fromEntries(state.tasks.map((t) => [t.name, t.result])).a, { log: ["a"] });
    const run = await served.client.invoke(parallel, null, { threadId: "par" });
    assert.deepEqual(run.output, { log: ["a", "b", "c"] });
    assert.deepEqual([runs.get("a"), runs.get("b")], [1, 2]);
  });

  test("interrupt() in a node pauses the run; resumes replay it, not the task before", async () => {
    let run = await served.client.invoke(ask, { name: "ada" }, { threadId: "ask" });
    assert.equal(run.state, "interrupted");
    assert.deepEqual(
      run.interrupts.map((i) => i.value),
      [{ question: "hello ada, first?" }],
    );
    assert.equal(run.interrupts[0].taskName, "ts_ask:ask"); // the node's task
    run = await served.client.invoke(ask, new Command({ resume: "one" }), { threadId: "ask" });
    assert.deepEqual(
      run.interrupts.map((i) => i.value),
      [{ question: "second?" }],
    );
    run = await served.client.invoke(ask, new Command({ resume: "two" }), { threadId: "ask" });
    assert.equal(run.state, "succeeded");
    assert.deepEqual(run.output, { name: "ada", greeting: "hello ada", answers: ["one", "two"] });
    assert.equal(runs.get("greet"), 1);
    assert.equal(runs.get("ask"), 3);
  });

  test("interruptBefore and interruptAfter stop the run; a run without input continues", async () => {
    let run = await served.client.invoke(breakpoints, {}, { threadId: "bp" });
    assert.equal(run.state, "interrupted"); // after "one"
    let state = await served.client.getState("bp");
    assert.deepEqual(state.next, ["two"]);
    assert.deepEqual(state.values, { steps: ["one"] });
    run = await served.client.invoke(breakpoints, null, { threadId: "bp" });
    assert.equal(run.state, "interrupted"); // before "three"
    state = await served.client.getState("bp");
    assert.deepEqual(state.next, ["three"]);
    assert.deepEqual(state.values, { steps: ["one", "two"] });
    run = await served.client.invoke(breakpoints, null, { threadId: "bp" });
    assert.equal(run.state, "succeeded");
    assert.deepEqual(run.output, { steps: ["one", "two", "three"] });
  });

  test("interrupts of two nodes of one step are resumed together, by id", async () => {
    const run = await served.client.invoke(vote, {}, { threadId: "vote" });
    assert.equal(run.state, "interrupted");
    const ids = Object.fromEntries(run.interrupts.map((i) => [(i.value as { voter: string }).voter, i.id]));
    assert.deepEqual(Object.keys(ids).sort(), ["alice", "bob"]);
    const done = await served.client.invoke(
      vote,
      new Command({ resume: { [ids.alice]: "yes", [ids.bob]: "no" } }),
      { threadId: "vote" },
    );
    assert.deepEqual([...(done.output as { votes: string[] }).votes].sort(), ["alice: yes", "bob: no (1)"]);
  });

  test("Command({ update, goto }) updates the state and routes, to names and Sends", async () => {
    const bug = await served.client.invoke(triage, { ticket: "app crash" }, { threadId: "triage-bug" });
    assert.deepEqual(bug.output, { ticket: "app crash", label: "bug", handled: ["fixed bug"] });
    const question = await served.client.invoke(triage, { ticket: "how to?" }, { threadId: "triage-q" });
    const output = question.output as { label: string; handled: string[] };
    assert.equal(output.label, "question");
    assert.deepEqual([...output.handled].sort(), ["answered how to?", "logged"]);
  });

  test("a subgraph node stops at its interrupt; the resume re-runs only its stopped node", async () => {
    const run = await served.client.invoke(essay, { topic: "cats" }, { threadId: "essay" });
    assert.equal(run.state, "interrupted");
    assert.deepEqual(
      run.interrupts.map((i) => i.value),
      [{ draft: "an essay about cats", notes: "read 19 chars" }],
    );
    const done = await served.client.invoke(essay, new Command({ resume: "approved" }), { threadId: "essay" });
    assert.deepEqual(done.output, {
      topic: "cats (approved)",
      draft: "an essay about cats",
      verdict: "approved",
    });
    assert.deepEqual(Object.fromEntries(runs), { write: 1, review_read: 1, review_decide: 2 });
  });

  test("graph.invoke() inside a node runs a subgraph; a resume continues it where it stopped", async () => {
    const run = await served.client.invoke(outer, { topic: "owls" }, { threadId: "outer" });
    assert.deepEqual(
      run.interrupts.map((i) => i.value),
      [{ question: "about OWLS?" }],
    );
    const done = await served.client.invoke(outer, new Command({ resume: "yes" }), { threadId: "outer" });
    assert.deepEqual(done.output, { topic: "owls", result: "OWLS: yes" });
    assert.deepEqual(Object.fromEntries(runs), { outer_call: 2, inner_shout: 1, inner_ask: 2 });
  });

  test("messagesStateReducer replaces by id, appends with new ids and removes", async () => {
    const run = await served.client.invoke(
      chat,
      { messages: [{ id: "m1", type: "human", content: " hi " }] },
      { threadId: "chat" },
    );
    const messages = (run.output as { messages: JsonMessage[] }).messages;
    assert.equal(messages.length, 1);
    assert.equal(messages[0].type, "ai");
    assert.equal(messages[0].content, "you said hi");
    assert.equal(typeof messages[0].id, "string");
    // After "bot": the human message replaced by id, the AI one appended with an id.
    const [, afterBot] = await served.client.getStateHistory("chat");
    const kept = (afterBot.values as { messages: JsonMessage[] }).messages;
    assert.deepEqual(kept[0], { id: "m1", type: "human", content: "hi" });
    assert.equal(kept[1].id, messages[0].id);
    assert.equal(kept.length, 2);
  });

  test("input and output schemas limit what a run writes and returns; merge merges", async () => {
    const run = await served.client.invoke(shaped, { question: "why", answer: "ignored" }, { threadId: "shaped" });
    assert.deepEqual(run.output, { answer: "why -> a,1 b,3 (shaped)" });
  });
});
