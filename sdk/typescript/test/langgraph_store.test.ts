/**
 * CairnStore, the langgraphjs BaseStore over Cairn's StoreService, against
 * a real `cairn serve`: a langgraphjs app with CairnSaver and CairnStore
 * interrupted in one process and resumed in another, whose memories a
 * third process reads from another thread; the same operations on
 * CairnStore and on langgraphjs's own InMemoryStore (LangGraph publishes no
 * store test suite for JS, so its reference store is the oracle); and what
 * CairnStore adds (TTLs, errors, closing).
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import {
  Annotation,
  END,
  InMemoryStore,
  START,
  StateGraph,
  entrypoint,
  getStore,
  task,
} from "@langchain/langgraph";
import type { BaseStore, Item, SearchItem } from "@langchain/langgraph-checkpoint";
import { CairnSaver, CairnStore, type CairnStoreOptions } from "@cairn/sdk/langgraph";
import { InvalidArgumentError, UnavailableError } from "../src/index.js";
import { startServer, type Server } from "./server.js";
import { DIMS, WordEmbeddings, cosine, embedText } from "./word_embeddings.js";

const HERE = dirname(fileURLToPath(import.meta.url));

let server: Server;
const closers: (() => void)[] = [];

function newStore(options: CairnStoreOptions = {}): CairnStore {
  const store = new CairnStore({ address: server.address, ...options });
  closers.push(() => store.close());
  return store;
}

before(async () => {
  server = await startServer();
});

after(async () => {
  for (const close of closers) close();
  await server.stop();
});

function root(): string {
  return `t${randomUUID().slice(0, 8)}`;
}

/** Runs test/apps/memory_graph_app.js once; resolves its output (the JSON line it prints). */
async function runApp(args: string[]): Promise<Record<string, unknown>> {
  const child = spawn(
    process.execPath,
    [join(HERE, "apps", "memory_graph_app.js"), "--address", server.address, ...args],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk) => (stdout += chunk));
  child.stderr!.on("data", (chunk) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("exit", resolve);
    child.once("error", reject);
  });
  assert.equal(code, 0, `memory_graph_app ${args.join(" ")} exited with ${code}:\n${stderr}`);
  return JSON.parse(stdout.trimEnd().split("\n").at(-1)!) as Record<string, unknown>;
}

type Interrupts = { value: { question: string; recalled: string[] } }[];

describe("a langgraphjs app with CairnSaver and CairnStore", () => {
  test("interrupted in one process, resumed in another; its memory read in a third, on another thread", async () => {
    const user = root();
    const first = await runApp(["--thread", `${user}-1`, "--user", user, "--question", "pizza"]);
    assert.deepEqual((first.__interrupt__ as Interrupts).map((i) => i.value), [
      { question: "pizza", recalled: [] },
    ]);

    const resumed = await runApp(["--thread", `${user}-1`, "--resume", "likes pizza and pasta"]);
    assert.equal(resumed.answer, "likes pizza and pasta");
    assert.equal(resumed.__interrupt__, undefined);

    // The memory is in the service, seen through a new store (and connection).
    const store = newStore();
    const remembered = await store.get(["users", user, "facts"], "fact-21");
    assert.deepEqual(remembered?.value, { fact: "likes pizza and pasta" });
    const saver = new CairnSaver({ address: server.address });
    closers.push(() => saver.close());
    const checkpoint = await saver.getTuple({ configurable: { thread_id: `${user}-1` } });
    assert.equal((checkpoint?.checkpoint.channel_values as { answer?: string }).answer, "likes pizza and pasta");

    // Another thread, another process: the node's semantic search finds it, with its score.
    const other = await runApp(["--thread", `${user}-2`, "--user", user, "--question", "pizza"]);
    const score = cosine(embedText("pizza"), embedText("likes pizza and pasta"));
    assert.deepEqual((other.__interrupt__ as Interrupts).map((i) => i.value), [
      { question: "pizza", recalled: [`likes pizza and pasta@${score.toFixed(3)}`] },
    ]);
  });

  test("getStore() in a StateGraph node and in a functional task go through CairnStore", async () => {
    const store = newStore();
    const user = root();
    const State = Annotation.Root({ user: Annotation<string>, count: Annotation<number> });
    const counter = new StateGraph(State)
      .addNode("visit", async (state: typeof State.State) => {
        const memories = getStore()!;
        const seen = ((await memories.get([state.user], "visits"))?.value.n as number | undefined) ?? 0;
        await memories.put([state.user], "visits", { n: seen + 1 });
        return { count: seen + 1 };
      })
      .addEdge(START, "visit")
      .addEdge("visit", END)
      .compile({ store });
    assert.equal((await counter.invoke({ user, count: 0 })).count, 1);
    assert.equal((await counter.invoke({ user, count: 0 })).count, 2);

    const note = task("note", async (text: string) => {
      await getStore()!.put([user, "notes"], text, { text });
      return text;
    });
    const checkpointer = new CairnSaver({ address: server.address });
    closers.push(() => checkpointer.close());
    const workflow = entrypoint({ name: "notes", checkpointer, store }, async (text: string) => {
      await note(text);
      return (await getStore()!.search([user, "notes"])).map((item) => item.key);
    });
    const config = { configurable: { thread_id: `${user}-notes` } };
    assert.deepEqual(await workflow.invoke("first", config), ["first"]);
    assert.deepEqual([...(await workflow.invoke("second", config))].sort(), ["first", "second"]);
    assert.equal((await store.get([user], "visits"))?.value.n, 2);
  });
});

// --- the same operations on InMemoryStore and CairnStore --------------------------------

/** What both stores must agree on: the item without its times. */
function plain(item: Item | null | undefined): unknown {
  return item ? { namespace: item.namespace, key: item.key, value: item.value } : null;
}

function ranked(items: SearchItem[]): unknown[] {
  return items.map((item) => [item.key, item.score === undefined ? undefined : Number(item.score.toFixed(5))]);
}

const byKey = (items: SearchItem[]) => items.map((item) => item.key).sort();

async function exercise(store: BaseStore, r: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  await store.put([r, "food"], "pizza", { text: "pizza and pasta", kind: "food", stars: 5 });
  await store.put([r, "pets"], "cat", { text: "my cat and my dog", kind: "pet", stars: 3 });
  await store.put([r, "weather"], "rain", { text: "rain rain sun", kind: "weather", stars: 1 });
  await store.put([r, "pets", "old"], "dog", { text: "dog", kind: "pet", stars: 4 }, false);
  out.get = plain(await store.get([r, "food"], "pizza"));
  out.missing = await store.get([r, "food"], "nothing");
  out.all = byKey(await store.search([r]));
  out.pets = byKey(await store.search([r, "pets"]));
  out.filter = byKey(await store.search([r], { filter: { kind: "pet" } }));
  out.operators = byKey(await store.search([r], { filter: { stars: { $gte: 3, $lt: 5 } } }));
  out.ne = byKey(await store.search([r], { filter: { kind: { $ne: "pet" } } }));
  out.in = byKey(await store.search([r], { filter: { kind: { $in: ["pet", "weather"] } } }));
  out.nin = byKey(await store.search([r], { filter: { stars: { $nin: [1, 5] } } }));
  out.query = ranked(await store.search([r], { query: "cat" }));
  out.queryFilter = ranked(await store.search([r], { query: "rain", filter: { stars: { $lte: 3 } } }));
  out.queryPage = ranked(await store.search([r], { query: "cat", limit: 2, offset: 1 }));
  out.namespaces = await store.listNamespaces({ prefix: [r] });
  out.suffix = await store.listNamespaces({ prefix: [r], suffix: ["pets"] });
  out.wildcard = await store.listNamespaces({ prefix: [r, "*", "old"] });
  out.depth = await store.listNamespaces({ prefix: [r], maxDepth: 2 });
  out.paged = await store.listNamespaces({ prefix: [r], limit: 2, offset: 1 });
  await store.put([r, "food"], "pizza", { text: "cold pizza", kind: "food", stars: 2 });
  out.replaced = plain(await store.get([r, "food"], "pizza"));
  out.batch = (
    await store.batch([
      { namespace: [r, "food"], key: "pizza" },
      { namespace: [r, "food"], key: "pizza", value: null },
      { namespace: [r, "food"], key: "pizza" },
    ])
  ).map((result) => plain(result as Item | null));
  out.deleted = await store.get([r, "food"], "pizza");
  await store.delete([r, "pets"], "cat");
  out.afterDelete = byKey(await store.search([r]));
  out.namespacesAfter = await store.listNamespaces({ prefix: [r] });
  return out;
}

describe("CairnStore agrees with langgraphjs's InMemoryStore", () => {
  test("get, put, delete, search (filter, query, paging), listNamespaces and batch", async () => {
    const r = root();
    const reference = new InMemoryStore({ index: { dims: DIMS, embeddings: new WordEmbeddings(), fields: ["text"] } });
    const cairn = newStore({ index: { dims: DIMS, embeddings: new WordEmbeddings(), fields: ["text"] } });
    const expected = await exercise(reference, r);
    const actual = await exercise(cairn, r);
    // The reference goes on listing a namespace whose items were all
    // deleted; the service lists only paths that hold items.
    const holding: string[][] = [];
    for (const ns of expected.namespacesAfter as string[][]) {
      const items = await reference.search(ns);
      if (items.some((item) => item.namespace.join("/") === ns.join("/"))) holding.push(ns);
    }
    assert.deepEqual(actual, { ...expected, namespacesAfter: holding });
    assert.deepEqual(holding, [
      [r, "pets", "old"],
      [r, "weather"],
    ]);
    // Nothing was taken for granted: the results have content.
    assert.deepEqual(expected.filter, ["cat", "dog"]);
    assert.deepEqual(expected.in, ["cat", "dog", "rain"]);
    assert.deepEqual(expected.nin, ["cat", "dog"]);
    assert.deepEqual((expected.query as unknown[][]).map(([key]) => key), ["cat", "pizza", "rain", "dog"]);
  });

  test("searches without a query come newest update first (the reference keeps insertion order)", async () => {
    const store = newStore();
    const r = root();
    await store.put([r], "a", { v: 1 });
    await store.put([r], "b", { v: 1 });
    await store.put([r], "a", { v: 2 });
    assert.deepEqual((await store.search([r])).map((item) => item.key), ["a", "b"]);
  });
});

describe("CairnStore", () => {
  test("put with a ttl in minutes; get and search refresh it unless told not to", async () => {
    const store = newStore({ ttl: { refreshOnRead: false } });
    const ns = [root()];
    await store.put(ns, "k", { v: 1 }, undefined, { ttl: 3 });
    const item = await store.client.get(ns, "k");
    assert.ok(Math.abs(item!.expiresAt!.getTime() - item!.updatedAt.getTime() - 3 * 60_000) <= 1);
    do {
      assert.equal((await store.client.get(ns, "k"))?.expiresAt?.getTime(), item!.expiresAt!.getTime());
    } while (Date.now() <= item!.updatedAt.getTime() + 2);
    const readAt = Date.now();
    await store.get(ns, "k", { refreshTtl: true });
    const refreshed = await store.client.get(ns, "k");
    assert.ok(refreshed!.expiresAt!.getTime() >= readAt + 3 * 60_000 - 1);
    const searchedAt = Date.now();
    await store.search(ns, { refreshTtl: true });
    assert.ok((await store.client.get(ns, "k"))!.expiresAt!.getTime() >= searchedAt + 3 * 60_000 - 1);
  });

  test("LangGraph's namespace checks, the service's errors, and a closed store", async () => {
    const store = newStore();
    await assert.rejects(store.put(["langgraph"], "k", { v: 1 }), /Root label for namespace cannot be "langgraph"/);
    await assert.rejects(store.put([], "k", { v: 1 }), /Namespace cannot be empty/);
    // Through batch (as a compiled graph sends them), the service checks.
    await assert.rejects(store.batch([{ namespace: ["langgraph"], key: "k", value: { v: 1 } }]), InvalidArgumentError);
    await assert.rejects(store.search([root()], { limit: 5000 }), InvalidArgumentError);

    const closed = new CairnStore({ address: server.address });
    await closed.put([root()], "k", { v: 1 });
    closed.close();
    await assert.rejects(closed.get([root()], "k"), UnavailableError);
  });

  test("a store whose service cannot be reached throws UnavailableError after its failover budget", async () => {
    const store = newStore({ address: "127.0.0.1:1", failoverTimeoutMs: 200 });
    await assert.rejects(store.get(["x"], "k"), UnavailableError);
  });
});
