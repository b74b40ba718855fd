/**
 * A graph whose nodes run in two languages: the TypeScript half. It serves
 * the graph `mixed_essay`, whose TypeScript nodes plan an outline, research
 * it (one Send per angle, each calling the Python task `py_fact`) and write a
 * draft; its `review` node is the graph `py_review`, registered and run by
 * the Python worker (examples/graph_mixed_python_worker.py), which stops at
 * an interrupt. It also serves the task `ts_word_count` (called by a Python
 * node) and the small graph `ts_title` (called from inside a Python node).
 *
 *     .venv/bin/python sdk/typescript/examples/graph_mixed_python_worker.py [address]
 *     node sdk/typescript/dist/examples/graph_mixed_worker.js [address]
 *
 * Start the Python worker first: the service accepts `mixed_essay` once the
 * graph it uses as a node is registered (until then this worker's connection
 * is refused, and it retries). Every node and task writes a custom stream
 * chunk `{ ran, language, pid }`.
 */

import {
  Annotation,
  END,
  START,
  Send,
  StateGraph,
  Worker,
  append,
  getWriter,
  remoteGraph,
  remoteTask,
  task,
} from "../src/index.js";

const ran = (name: string) => getWriter()({ ran: name, language: "typescript", pid: process.pid });

const EssayState = Annotation.Root({
  topic: Annotation<string>,
  outline: Annotation<string>,
  facts: Annotation<string[]>({ reducer: append, default: () => [] }),
  draft: Annotation<string>,
  words: Annotation<number>,
  verdict: Annotation<string>,
  title: Annotation<string>,
});

/** Served by the Python worker. */
const pyFact = remoteTask<{ topic: string; angle: string }, string>("py_fact");

export const mixedEssay = new StateGraph(EssayState)
  .addNode("plan", (state) => {
    ran("plan");
    return { outline: `An outline of ${state.topic}` };
  })
  .addNode("research", async (arg: { topic: string; angle: string }) => {
    ran("research");
    return { facts: [await pyFact(arg)] };
  })
  .addNode("write", (state) => {
    ran("write");
    return { draft: `${state.outline}: ${[...state.facts].sort().join("; ")}` };
  })
  // A subgraph whose nodes run on the Python worker.
  .addNode("review", remoteGraph("py_review"))
  .addNode("publish", (state) => {
    ran("publish");
    return { title: state.verdict === "approved" ? state.topic.toUpperCase() : "" };
  })
  .addEdge(START, "plan")
  .addConditionalEdges("plan", (state) =>
    ["history", "science"].map((angle) => new Send("research", { topic: state.topic, angle })),
  )
  .addEdge("research", "write")
  .addEdge("write", "review")
  .addEdge("review", "publish")
  .addEdge("publish", END)
  .compile({ name: "mixed_essay" });

export const tsWordCount = task("ts_word_count", (text: string) => {
  ran("ts_word_count");
  return text.split(/\s+/).filter(Boolean).length;
});

const TitleState = Annotation.Root({ topic: Annotation<string>, title: Annotation<string> });

/** Called by name from inside a Python node. */
export const tsTitle = new StateGraph(TitleState)
  .addNode("entitle", (state) => {
    ran("entitle");
    return { title: `All about ${state.topic}` };
  })
  .addEdge(START, "entitle")
  .addEdge("entitle", END)
  .compile({ name: "ts_title" });

const address = process.argv[2] ?? "127.0.0.1:50051";
const worker = new Worker({ address, functions: [mixedEssay, tsWordCount, tsTitle] });
process.on("SIGINT", () => void worker.stop({ graceMs: 1000 }));
process.on("SIGTERM", () => void worker.stop({ graceMs: 1000 }));
const serving = worker.run();
await worker.waitConnected();
console.log(`typescript graph worker ready ${worker.workerId} ${process.pid}`);
await serving;
