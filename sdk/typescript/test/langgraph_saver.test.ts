/**
 * CairnSaver under real langgraphjs graphs, against a real `cairn serve`: a
 * StateGraph and a subgraph that stop at interrupt() and are resumed through
 * a new saver (a new connection), a functional entrypoint whose recorded task
 * is not run again on resume, and what the saver adds to LangGraph's own
 * validation suite (test/checkpoint_validation.vitest.ts): pages, write
 * semantics, bytes values, errors and the Cairn extras.
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  Annotation,
  Command,
  END,
  INTERRUPT,
  MemorySaver,
  Send,
  START,
  StateGraph,
  entrypoint,
  getPreviousState,
  interrupt,
  task,
} from "@langchain/langgraph";
import {
  BaseCheckpointSaver,
  emptyCheckpoint,
  uuid6,
  type Checkpoint,
  type CheckpointMetadata,
  type CheckpointListOptions,
} from "@langchain/langgraph-checkpoint";
import type { RunnableConfig } from "@langchain/core/runnables";
import { CairnSaver } from "@cairn/sdk/langgraph";
import { UnavailableError } from "../src/index.js";
import { ROOT, startServer, type Server } from "./server.js";

let server: Server;
const savers: CairnSaver[] = [];

/** A new saver, hence a new connection; all are closed after the tests. */
function newSaver(options: { listPageSize?: number } = {}): CairnSaver {
  const saver = new CairnSaver({ address: server.address, ...options });
  savers.push(saver);
  return saver;
}

before(async () => {
  server = await startServer();
});

after(async () => {
  for (const saver of savers) saver.close();
  await server.stop();
});

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** The values of the interrupts a graph stopped at (its `__interrupt__` output). */
function interrupts(output: unknown): unknown[] | undefined {
  return (output as { __interrupt__?: { value: unknown }[] }).__interrupt__?.map((i) => i.value);
}

function thread(name: string): { configurable: { thread_id: string } } {
  return { configurable: { thread_id: `${name}-${randomUUID()}` } };
}

// --- StateGraph ----------------------------------------------------------------------

const Essay = Annotation.Root({
  topic: Annotation<string>,
  drafts: Annotation<string[]>({ reducer: (a, b) => a.concat(b), default: () => [] }),
  verdict: Annotation<string>,
  log: Annotation<string[]>({ reducer: (a, b) => a.concat(b), default: () => [] }),
});

const runs = { draft: 0, review: 0, publish: 0 };

const essay = new StateGraph(Essay)
  // Two drafts in parallel (Send), then a review that asks a human.
  .addNode("draft", (s: { angle: string; topic: string }) => {
    runs.draft += 1;
    return { drafts: [`${s.angle} essay on ${s.topic}`], log: [`draft:${s.angle}`] };
  })
  .addNode("review", (s: typeof Essay.State) => {
    runs.review += 1;
    const verdict = interrupt<{ drafts: string[] }, string>({ drafts: [...s.drafts].sort() });
    return { verdict, log: ["review"] };
  })
  .addNode("publish", (s: typeof Essay.State) => {
    runs.publish += 1;
    return { log: [`publish:${s.verdict}`] };
  })
  .addConditionalEdges(START, (s: typeof Essay.State) =>
    ["short", "long"].map((angle) => new Send("draft", { angle, topic: s.topic })),
  )
  .addEdge("draft", "review")
  .addEdge("review", "publish")
  .addEdge("publish", END);

describe("StateGraph with CairnSaver", () => {
  test("an interrupt is resumed through a new saver, on a new connection", async () => {
    const config = thread("essay");
    const first = newSaver();
    const app = essay.compile({ checkpointer: first });
    const stopped = await app.invoke({ topic: "cats" }, config);
    assert.deepEqual(interrupts(stopped), [
      { drafts: ["long essay on cats", "short essay on cats"] },
    ]);
    const waiting = await app.getState(config);
    assert.deepEqual(waiting.next, ["review"]);
    first.close();
    // A closed saver does not open its connection again.
    await assert.rejects(first.getTuple(config), UnavailableError);

    const second = newSaver();
    const resumed = essay.compile({ checkpointer: second });
    const done = await resumed.invoke(new Command({ resume: "approved" }), config);
    assert.equal(done.verdict, "approved");
    assert.deepEqual([...done.drafts].sort(), ["long essay on cats", "short essay on cats"]);
    assert.deepEqual(done.log.slice(2), ["review", "publish:approved"]);
    // The drafts were recorded before the interrupt: only review ran again.
    assert.deepEqual(runs, { draft: 2, review: 2, publish: 1 });

    // A third saver sees the finished thread and its history, newest first.
    const third = newSaver({ listPageSize: 2 });
    const viewer = essay.compile({ checkpointer: third });
    const state = await viewer.getState(config);
    assert.deepEqual(state.next, []);
    assert.equal(state.values.verdict, "approved");
    const history = await collect(viewer.getStateHistory(config));
    assert.deepEqual(
      history.map((h) => h.metadata?.step),
      [3, 2, 1, 0, -1],
    );
    assert.equal(history.at(-1)?.metadata?.source, "input");
    const ids = history.map((h) => h.config.configurable?.checkpoint_id as string);
    assert.deepEqual(ids, [...ids].sort().reverse());
  });

  test("a fork made by time travel keeps its own values, as with MemorySaver", async () => {
    // Replaying from the checkpoint before the review and answering
    // differently forks the thread; both branches write `verdict` at the
    // same step, and each must read back its own.
    const Review = Annotation.Root({
      verdict: Annotation<string>,
      log: Annotation<string[]>({ reducer: (a, b) => a.concat(b), default: () => [] }),
    });
    const graph = new StateGraph(Review)
      .addNode("draft", () => ({ log: ["draft"] }))
      .addNode("review", () => ({ verdict: interrupt<string, string>("ok?"), log: ["review"] }))
      .addEdge(START, "draft")
      .addEdge("draft", "review")
      .addEdge("review", END);
    async function story(saver: BaseCheckpointSaver, resumeWith: () => BaseCheckpointSaver) {
      const config = thread("fork");
      await graph.compile({ checkpointer: saver }).invoke({ log: [] }, config);
      const app = graph.compile({ checkpointer: resumeWith() });
      await app.invoke(new Command({ resume: "first" }), config);
      const history = await collect(app.getStateHistory(config));
      const beforeReview = history.find((h) => h.next.includes("review"))!;
      const replayed = await app.invoke(null, beforeReview.config);
      const fork = await app.invoke(new Command({ resume: "second" }), config);
      const branches = (await collect(app.getStateHistory(config))).map((h) => [
        h.metadata?.step,
        h.metadata?.source,
        h.next,
        h.values.verdict ?? null,
      ]);
      const state = (await app.getState(config)).values;
      return { replayed: interrupts(replayed), fork, state, branches };
    }
    const memory = new MemorySaver();
    const expected = await story(memory, () => memory);
    const actual = await story(newSaver(), () => newSaver());
    assert.deepEqual(actual, expected);
    assert.equal(actual.state.verdict, "second");
  });

  test("an interrupt inside a subgraph is resumed through a new saver", async () => {
    const Inner = Annotation.Root({
      question: Annotation<string>,
      answer: Annotation<string>,
    });
    const inner = new StateGraph(Inner)
      .addNode("ask", (s: typeof Inner.State) => ({
        answer: interrupt<string, string>(s.question),
      }))
      .addEdge(START, "ask")
      .compile();
    const Outer = Annotation.Root({
      question: Annotation<string>,
      answer: Annotation<string>,
      loud: Annotation<string>,
    });
    const outer = new StateGraph(Outer)
      .addNode("inner", inner)
      .addNode("shout", (s: typeof Outer.State) => ({ loud: s.answer.toUpperCase() }))
      .addEdge(START, "inner")
      .addEdge("inner", "shout");

    const config = thread("subgraph");
    const stopped = await outer
      .compile({ checkpointer: newSaver() })
      .invoke({ question: "name?" }, config);
    assert.deepEqual(interrupts(stopped), ["name?"]);

    const app = outer.compile({ checkpointer: newSaver() });
    const state = await app.getState(config, { subgraphs: true });
    const subState = state.tasks[0]?.state as { next: string[] } | undefined;
    assert.deepEqual(subState?.next, ["ask"]);
    const done = await app.invoke(new Command({ resume: "cairn" }), config);
    assert.deepEqual(
      { answer: done.answer, loud: done.loud },
      { answer: "cairn", loud: "CAIRN" },
    );

    // The subgraph's checkpoints live in their own namespace of the thread.
    const reader = newSaver();
    const namespaces = new Set(
      (await collect(reader.list(config))).map((t) => t.config.configurable?.checkpoint_ns),
    );
    assert.ok(namespaces.has(""));
    const subgraphNs = [...namespaces].filter((ns) => String(ns).startsWith("inner:"));
    assert.equal(subgraphNs.length, 1, [...namespaces].join());
  });
});

// --- functional API ------------------------------------------------------------------

describe("entrypoint with CairnSaver", () => {
  test("a recorded task is not run again when a new saver resumes the interrupt", async () => {
    let calls = 0;
    const shout = task("shout", async (text: string) => {
      calls += 1;
      return text.toUpperCase();
    });
    const workflow = (checkpointer: CairnSaver) =>
      entrypoint(
        { name: "workflow", checkpointer },
        async (topic: string) => {
          const previous = getPreviousState<{ loud: string; ok: string }>();
          const loud = await shout(topic);
          const ok = interrupt<{ loud: string }, string>({ loud });
          return entrypoint.final({
            value: { loud, ok, previous: previous?.loud ?? null },
            save: { loud, ok },
          });
        },
      );

    const config = thread("workflow");
    const stopped = await workflow(newSaver()).invoke("cats", config);
    assert.deepEqual(interrupts(stopped), [{ loud: "CATS" }]);

    const done = await workflow(newSaver()).invoke(new Command({ resume: "yes" }), config);
    assert.deepEqual(done, { loud: "CATS", ok: "yes", previous: null });
    assert.equal(calls, 1);

    // The next run on the thread reads what the last one saved.
    const again = workflow(newSaver());
    await again.invoke("dogs", config);
    const last = await again.invoke(new Command({ resume: "no" }), config);
    assert.deepEqual(last, { loud: "DOGS", ok: "no", previous: "CATS" });
    assert.equal(calls, 2);
  });
});

// --- the saver -----------------------------------------------------------------------

function checkpoint(values: Record<string, unknown>, versions: Record<string, number>): Checkpoint {
  return { ...emptyCheckpoint(), id: uuid6(0), channel_values: values, channel_versions: versions };
}

/**
 * Puts one checkpoint per step on a new thread, each the child of the one
 * before, with channel `step` and metadata `{ source, step, ...extra }`.
 * Returns the thread id and the checkpoint ids, oldest first.
 */
async function putSteps(
  saver: CairnSaver,
  steps: number,
  extra: (step: number) => Record<string, unknown> = () => ({}),
): Promise<{ threadId: string; ids: string[] }> {
  const threadId = `steps-${randomUUID()}`;
  let config: RunnableConfig = { configurable: { thread_id: threadId } };
  const ids: string[] = [];
  for (let step = 0; step < steps; step += 1) {
    const source = step === 0 ? "input" : "loop";
    const metadata = { source, step, parents: {}, ...extra(step) } as CheckpointMetadata;
    const cp = checkpoint({ step }, { step: step + 1 });
    config = await saver.put(config, cp, metadata, { step: step + 1 });
    ids.push(cp.id);
  }
  return { threadId, ids };
}

async function listed(saver: CairnSaver, config: RunnableConfig, options?: CheckpointListOptions) {
  return (await collect(saver.list(config, options))).map((t) => t.checkpoint.id);
}

describe("CairnSaver", () => {
  test("list pages through many checkpoints, honouring limit, before and filter", async () => {
    const saver = newSaver({ listPageSize: 2 });
    const { threadId, ids } = await putSteps(saver, 7);
    const newestFirst = [...ids].reverse();
    const where = { configurable: { thread_id: threadId } };
    assert.deepEqual(await listed(saver, where), newestFirst);
    assert.deepEqual(await listed(saver, where, { limit: 3 }), newestFirst.slice(0, 3));
    assert.deepEqual(await listed(saver, where, { limit: 0 }), []);
    const before = { configurable: { checkpoint_id: ids[4] } };
    assert.deepEqual(await listed(saver, where, { before }), newestFirst.slice(3));
    assert.deepEqual(await listed(saver, where, { filter: { source: "input" } }), [ids[0]]);
    assert.deepEqual(await listed(saver, where, { filter: { step: 5, source: "loop" } }), [ids[5]]);
    const values = (await collect(saver.list(where))).map((t) => t.checkpoint.channel_values.step);
    assert.deepEqual(values, [6, 5, 4, 3, 2, 1, 0]);
    assert.throws(() => new CairnSaver({ address: server.address, listPageSize: 1001 }), RangeError);
  });

  test("the first write of a task wins, special channels are replaced, bytes stay bytes", async () => {
    const saver = newSaver();
    const config = await saver.put(
      { configurable: { thread_id: `writes-${randomUUID()}` } },
      checkpoint({ blob: new Uint8Array([0, 1, 255]) }, { blob: 1 }),
      { source: "loop", step: 0, parents: {} },
      { blob: 1 },
    );
    await saver.putWrites(config, [["out", "first"], [INTERRUPT, "ask once"]], "task-a", "~a");
    await saver.putWrites(config, [["out", "second"]], "task-a", "~a");
    await saver.putWrites(config, [[INTERRUPT, "ask again"]], "task-a", "~a");
    await saver.putWrites(config, [["out", new Uint8Array([7])]], "task-0", "~b");
    const tuple = (await saver.getTuple(config))!;
    assert.deepEqual(tuple.checkpoint.channel_values.blob, new Uint8Array([0, 1, 255]));
    assert.ok(tuple.checkpoint.channel_values.blob instanceof Uint8Array);
    // Ordered by task path first, then task id and index.
    assert.deepEqual(tuple.pendingWrites, [
      ["task-a", INTERRUPT, "ask again"],
      ["task-a", "out", "first"],
      ["task-0", "out", new Uint8Array([7])],
    ]);
  });

  test("copyThread, prune and deleteForRuns", async () => {
    const saver = newSaver();
    const runs = ["run-1", "run-1", "run-2"];
    const { threadId: source } = await putSteps(saver, 3, (step) => ({ run_id: runs[step] }));
    const target = `target-${randomUUID()}`;
    const steps = async (threadId: string) =>
      (await collect(saver.list({ configurable: { thread_id: threadId } }))).map(
        (t) => t.metadata?.step,
      );

    await saver.copyThread(source, target);
    assert.deepEqual(await steps(target), [2, 1, 0]);
    await saver.deleteForRuns(["run-1"]);
    assert.deepEqual(await steps(source), [2]);
    await saver.prune([target]);
    const kept = (await collect(saver.list({ configurable: { thread_id: target } })))[0];
    assert.deepEqual([kept?.metadata?.step, kept?.checkpoint.channel_values], [2, { step: 2 }]);
    await saver.prune([target], { strategy: "delete" });
    assert.deepEqual(await steps(target), []);
    await saver.deleteThread(source);
    assert.equal(await saver.getTuple({ configurable: { thread_id: source } }), undefined);
  });

  test("a call made while the server restarts waits for it, as the Client does", async () => {
    const folder = mkdtempSync(join(tmpdir(), "cairn-ts-saver-restart-"));
    let first: Server | undefined = await startServer({ folder });
    let second: Server | undefined;
    const saver = new CairnSaver({ address: first.address });
    try {
      const config = await saver.put(
        { configurable: { thread_id: "restart" } },
        checkpoint({ topic: "cats" }, { topic: 1 }),
        { source: "input", step: -1, parents: {} },
        { topic: 1 },
      );
      const exited = new Promise((resolve) => first!.process.once("exit", resolve));
      process.kill(first.process.pid!, "SIGKILL");
      await exited;
      first = undefined;
      // Sent while nothing listens on the port: it waits for the server below.
      const read = saver.getTuple(config);
      second = await startServer({ folder, port: Number(saver.address.split(":")[1]) });
      const tuple = await read;
      assert.equal(tuple?.checkpoint.channel_values.topic, "cats");
    } finally {
      saver.close();
      await first?.stop();
      await second?.stop();
      rmSync(folder, { recursive: true, force: true });
    }
  });

  test("a server that is not there is a typed UnavailableError", async () => {
    const gone = await startServer();
    await gone.stop();
    const saver = new CairnSaver({ address: gone.address, failoverTimeoutMs: 300 });
    try {
      await assert.rejects(saver.getTuple({ configurable: { thread_id: "t" } }), UnavailableError);
    } finally {
      saver.close();
    }
  });

  test("@langchain/* is needed by @cairn/sdk/langgraph only (CairnSaver, CairnStore)", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "sdk/typescript/package.json"), "utf8"));
    for (const name of ["@langchain/langgraph-checkpoint", "@langchain/core"]) {
      assert.equal(pkg.dependencies[name], undefined);
      assert.equal(pkg.peerDependenciesMeta[name]?.optional, true);
    }
    assert.equal(pkg.exports["./langgraph"].default, "./dist/src/langgraph.js");
    const src = join(ROOT, "sdk/typescript/dist/src");
    const importers = readdirSync(src, { recursive: true, encoding: "utf8" })
      .filter((file) => file.endsWith(".js"))
      .filter((file) => /from "@langchain\//.test(readFileSync(join(src, file), "utf8")));
    assert.deepEqual(importers.sort(), ["langgraph.js", "langgraph_store.js"]);
    // CairnStore is reached through @cairn/sdk/langgraph, never from the main entry.
    const storeImporters = readdirSync(src, { recursive: true, encoding: "utf8" })
      .filter((file) => file.endsWith(".js"))
      .filter((file) => readFileSync(join(src, file), "utf8").includes('from "./langgraph_store.js"'));
    assert.deepEqual(storeImporters, ["langgraph.js"]);
  });
});
