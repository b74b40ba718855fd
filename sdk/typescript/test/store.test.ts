/**
 * Long-term memory through the SDK, against a real `cairn serve`:
 * `client.store`'s get, put, delete, search (prefix, filter, order, paging),
 * listNamespaces and batch; TTLs as the service reports them (expiry is
 * tested server-side with an injected clock); semantic search with a
 * deterministic fake embedding function; namespaces keeping memories apart;
 * and `getStore()` / `config.store` in entrypoints and tasks, a memory
 * written in one thread and read in another.
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import {
  Client,
  InvalidArgumentError,
  Worker,
  entrypoint,
  getStore,
  task,
  type ClientOptions,
  type StoreItem,
  type StoreSearchItem,
} from "../src/index.js";
import { startServer, type Server } from "./server.js";
import { DIMS, cosine, embedText, recordingEmbed } from "./word_embeddings.js";

let server: Server;
let client: Client;
const clients: Client[] = [];

function newClient(options: ClientOptions = {}): Client {
  const made = new Client({ address: server.address, ...options });
  clients.push(made);
  return made;
}

before(async () => {
  server = await startServer();
  client = newClient();
});

after(async () => {
  for (const made of clients) made.close();
  await server.stop();
});

/** A first label no other test uses, so that searches see only their own items. */
function root(): string {
  return `t${randomUUID().slice(0, 8)}`;
}

const keys = (items: StoreItem[]) => items.map((item) => item.key);

describe("client.store", () => {
  test("put, get and delete, with created and updated times", async () => {
    const store = client.store;
    const ns = [root(), "u-42"];
    const first = await store.put(ns, "food", { likes: "pizza", n: 1 });
    assert.deepEqual([first.namespace, first.key, first.value], [ns, "food", { likes: "pizza", n: 1 }]);
    assert.equal(first.createdAt.getTime(), first.updatedAt.getTime());
    assert.equal(first.expiresAt, undefined);

    const got = await store.get(ns, "food");
    assert.ok(got);
    assert.deepEqual(got, first);

    const second = await store.put(ns, "food", { likes: "pasta" });
    assert.deepEqual(second.value, { likes: "pasta" }); // replaced, not merged
    assert.equal(second.createdAt.getTime(), first.createdAt.getTime());
    assert.ok(second.updatedAt.getTime() >= first.updatedAt.getTime());
    assert.deepEqual((await store.get(ns, "food"))?.value, { likes: "pasta" });

    assert.equal(await store.get(ns, "nothing"), null);
    assert.equal(await store.delete(ns, "food"), true);
    assert.equal(await store.get(ns, "food"), null);
    assert.equal(await store.delete(ns, "food"), false);
  });

  test("search: namespace prefix, filter, newest update first, limit and offset", async () => {
    const store = client.store;
    const r = root();
    await store.put([r, "a"], "1", { kind: "note", score: 1, tags: { color: "red" } });
    await store.put([r, "a", "deep"], "2", { kind: "note", score: 5 });
    await store.put([r, "b"], "3", { kind: "todo", score: 3 });
    await store.put([`${r}x`], "4", { kind: "note", score: 9 }); // another first label

    const all = await store.search([r]);
    assert.deepEqual(keys(all), ["3", "2", "1"]);
    assert.ok(all.every((item: StoreSearchItem) => item.score === undefined));
    assert.deepEqual(all[1].namespace, [r, "a", "deep"]);
    assert.deepEqual(keys(await store.search([r, "a"])), ["2", "1"]);
    assert.deepEqual(keys(await store.search([r], { filter: { kind: "note" } })), ["2", "1"]);
    assert.deepEqual(keys(await store.search([r], { filter: { score: { $gt: 2 } } })), ["3", "2"]);
    assert.deepEqual(keys(await store.search([r], { filter: { score: { $gte: 1, $lt: 5 } } })), ["3", "1"]);
    assert.deepEqual(keys(await store.search([r], { filter: { kind: { $ne: "note" } } })), ["3"]);
    assert.deepEqual(keys(await store.search([r], { filter: { tags: { color: "red" } } })), ["1"]);
    assert.deepEqual(keys(await store.search([r], { filter: { kind: "note", score: 5 } })), ["2"]);
    assert.deepEqual(keys(await store.search([r], { limit: 2 })), ["3", "2"]);
    assert.deepEqual(keys(await store.search([r], { limit: 2, offset: 2 })), ["1"]);
    assert.deepEqual(await store.search([r], { limit: 0 }), []);

    // Updating an item makes it the newest.
    await store.put([r, "a"], "1", { kind: "note", score: 1 });
    assert.deepEqual(keys(await store.search([r])), ["1", "3", "2"]);
  });

  test("listNamespaces: prefix and suffix with wildcards, maxDepth, limit and offset", async () => {
    const store = client.store;
    const r = root();
    for (const ns of [
      [r, "users", "u1", "memories"],
      [r, "users", "u2", "memories"],
      [r, "users", "u2", "prefs"],
      [r, "docs"],
    ]) {
      await store.put(ns, "k", { v: 1 });
    }
    const everything = [
      [r, "docs"],
      [r, "users", "u1", "memories"],
      [r, "users", "u2", "memories"],
      [r, "users", "u2", "prefs"],
    ];
    assert.deepEqual(await store.listNamespaces({ prefix: [r] }), everything);
    assert.deepEqual(await store.listNamespaces({ prefix: [r, "users"], suffix: ["memories"] }), [
      [r, "users", "u1", "memories"],
      [r, "users", "u2", "memories"],
    ]);
    assert.deepEqual(await store.listNamespaces({ prefix: [r, "*", "u2"] }), everything.slice(2));
    assert.deepEqual(await store.listNamespaces({ prefix: [r], suffix: ["u1", "*"] }), [everything[1]]);
    assert.deepEqual(await store.listNamespaces({ prefix: [r], maxDepth: 2 }), [
      [r, "docs"],
      [r, "users"],
    ]);
    assert.deepEqual(await store.listNamespaces({ prefix: [r], limit: 2, offset: 1 }), everything.slice(1, 3));
    assert.deepEqual(await store.listNamespaces({ prefix: [r], limit: 0 }), []);
  });

  test("batch: reads see the store before the batch, then writes apply in order", async () => {
    const store = client.store;
    const ns = [root()];
    await store.put(ns, "old", { v: 1 });
    const results = await store.batch([
      { namespace: ns, key: "old" },
      { namespace: ns, key: "old", value: { v: 2 } },
      { namespace: ns, key: "new", value: { v: 3 } },
      { namespace: ns, key: "new" },
      { namespacePrefix: ns },
      { matchConditions: [{ matchType: "prefix", path: ns }], limit: 10, offset: 0 },
      { namespace: ns, key: "never", value: null },
    ]);
    assert.equal(results.length, 7);
    assert.deepEqual((results[0] as StoreItem).value, { v: 1 });
    assert.equal(results[1], undefined);
    assert.equal(results[2], undefined);
    assert.equal(results[3], null);
    assert.deepEqual(
      (results[4] as StoreSearchItem[]).map((item) => [item.key, item.value]),
      [["old", { v: 1 }]],
    );
    assert.deepEqual(results[5], [ns]);
    assert.equal(results[6], undefined);
    assert.deepEqual((await store.get(ns, "old"))?.value, { v: 2 });
    assert.deepEqual((await store.get(ns, "new"))?.value, { v: 3 });

    // Of several writes to one item the last wins; a null value deletes.
    await store.batch([
      { namespace: ns, key: "k", value: { v: 1 } },
      { namespace: ns, key: "k", value: { v: 2 } },
      { namespace: ns, key: "new", value: null },
    ]);
    assert.deepEqual((await store.get(ns, "k"))?.value, { v: 2 });
    assert.equal(await store.get(ns, "new"), null);
    await store.batch([
      { namespace: ns, key: "k", value: { v: 3 } },
      { namespace: ns, key: "k", value: null },
    ]);
    assert.equal(await store.get(ns, "k"), null);
    assert.deepEqual(await store.batch([]), []);
  });

  test("bad requests: typed errors from the service, or refused before sending", async () => {
    const store = client.store;
    const ns = [root()];
    await assert.rejects(store.put(["langgraph", "x"], "k", { v: 1 }), InvalidArgumentError);
    await assert.rejects(store.put([...ns, "a.b"], "k", { v: 1 }), InvalidArgumentError);
    await assert.rejects(store.put(ns, "", { v: 1 }), InvalidArgumentError);
    await assert.rejects(store.search(ns, { limit: 1001 }), InvalidArgumentError);
    await assert.rejects(store.search(ns, { filter: { v: { $near: 1 } } }), InvalidArgumentError);
    await assert.rejects(
      store.batch([
        { namespace: ns, key: "fine", value: { v: 1 } },
        { namespace: ["langgraph"], key: "k", value: { v: 1 } },
      ]),
      (error: InvalidArgumentError) => error.metadata.operation === "1",
    );
    assert.equal(await store.get(ns, "fine"), null); // the batch was refused whole
    await assert.rejects(store.put(ns, "k", [1, 2] as unknown as Record<string, unknown>), TypeError);
    await assert.rejects(store.put(ns, "k", { when: new Map() }), TypeError);
    await assert.rejects(store.put(ns, "k", { v: 1 }, undefined, { ttl: 0 }), RangeError);
    await assert.rejects(store.search(ns, { limit: -1 }), RangeError);
    assert.throws(() => newClient({ store: { ttl: { defaultTtl: -1 } } }), RangeError);
  });

  test("namespaces keep memories apart", async () => {
    const teamB = newClient({ namespace: "team-b" }).store;
    const ns = [root()];
    await client.store.put(ns, "k", { owner: "default" });
    assert.equal(await teamB.get(ns, "k"), null);
    assert.deepEqual(await teamB.search(ns), []);
    assert.deepEqual(await teamB.listNamespaces({ prefix: ns }), []);
    await teamB.put(ns, "k", { owner: "team-b" });
    assert.deepEqual((await client.store.get(ns, "k"))?.value, { owner: "default" });
    assert.deepEqual((await teamB.get(ns, "k"))?.value, { owner: "team-b" });
    assert.equal(await teamB.delete(ns, "k"), true);
    assert.deepEqual((await client.store.get(ns, "k"))?.value, { owner: "default" });
  });
});

describe("TTL", () => {
  const MINUTE = 60_000;
  const lifetime = (item: StoreItem | null) => item!.expiresAt!.getTime() - item!.updatedAt.getTime();

  test("a put's ttl (minutes) sets the expiry; reads refresh it unless told not to", async () => {
    const store = client.store;
    const ns = [root()];
    const put = await store.put(ns, "k", { v: 1 }, undefined, { ttl: 5 });
    assert.ok(put.expiresAt);
    assert.ok(Math.abs(lifetime(put) - 5 * MINUTE) <= 1);
    assert.ok(Math.abs(put.expiresAt.getTime() - Date.now() - 5 * MINUTE) < 10_000);

    // Reads that do not refresh leave the expiry as the put set it; they are
    // repeated until the clock has moved on, so that a refresh would show.
    const putAt = put.updatedAt.getTime();
    do {
      assert.equal((await store.get(ns, "k", { refreshTtl: false }))?.expiresAt?.getTime(), put.expiresAt.getTime());
      const [found] = await store.search(ns, { refreshTtl: false });
      assert.equal(found.expiresAt?.getTime(), put.expiresAt.getTime());
    } while (Date.now() <= putAt + 2);

    const readAt = Date.now();
    const refreshed = await store.get(ns, "k");
    assert.ok(refreshed!.expiresAt!.getTime() >= readAt + 5 * MINUTE - 1);
    assert.ok(refreshed!.expiresAt!.getTime() > put.expiresAt.getTime());
    const searchedAt = Date.now();
    const [searched] = await store.search(ns);
    assert.ok(searched.expiresAt!.getTime() >= searchedAt + 5 * MINUTE - 1);
    assert.equal(searched.updatedAt.getTime(), putAt); // a read does not update the item

    // A put without a ttl replaces the expiry: the item lives forever.
    const forever = await store.put(ns, "k", { v: 2 });
    assert.equal(forever.expiresAt, undefined);
    assert.equal((await store.get(ns, "k"))?.expiresAt, undefined);

    await store.batch([{ namespace: ns, key: "b", value: { v: 1 }, ttl: 2 }]);
    assert.ok(Math.abs(lifetime(await store.get(ns, "b", { refreshTtl: false })) - 2 * MINUTE) <= 1);

    // The service's minimum is one second.
    await assert.rejects(store.put(ns, "k", { v: 1 }, undefined, { ttl: 0.5 / 60 }), InvalidArgumentError);
  });

  test("defaultTtl and refreshOnRead of the store options", async () => {
    const store = newClient({ store: { ttl: { defaultTtl: 1, refreshOnRead: false } } }).store;
    const ns = [root()];
    const put = await store.put(ns, "k", { v: 1 });
    assert.ok(Math.abs(lifetime(put) - MINUTE) <= 1);
    assert.equal((await store.put(ns, "never", { v: 1 }, undefined, { ttl: null })).expiresAt, undefined);
    assert.ok(Math.abs(lifetime(await store.put(ns, "ten", { v: 1 }, undefined, { ttl: 10 })) - 10 * MINUTE) <= 1);

    const putAt = put.updatedAt.getTime();
    do {
      assert.equal((await store.get(ns, "k"))?.expiresAt?.getTime(), put.expiresAt!.getTime());
    } while (Date.now() <= putAt + 2);
    const readAt = Date.now();
    const refreshed = await store.get(ns, "k", { refreshTtl: true });
    assert.ok(refreshed!.expiresAt!.getTime() >= readAt + MINUTE - 1);
  });
});

describe("semantic search", () => {
  test("puts embed the chosen fields here; a query ranks nearest first, with scores", async () => {
    const calls: string[][] = [];
    const store = newClient({ store: { index: { dims: DIMS, embed: recordingEmbed(calls), fields: ["text"] } } }).store;
    const r = root();
    const main = [r, "main"];
    await store.batch([
      { namespace: [...main, "food"], key: "pizza", value: { text: "pizza and pasta", kind: "food" } },
      { namespace: [...main, "pets"], key: "cat", value: { text: "my cat and my dog", kind: "pet" } },
      { namespace: [...main, "weather"], key: "rain", value: { text: "rain rain sun", kind: "weather" } },
      { namespace: [...main, "food"], key: "plain", value: { text: "cat" }, index: false },
    ]);
    // One call to the model for the batch; "plain" is not embedded.
    assert.deepEqual(calls, [["pizza and pasta", "my cat and my dog", "rain rain sun"]]);

    calls.length = 0;
    const found = await store.search(main, { query: "cat" });
    assert.deepEqual(calls, [["cat"]]);
    assert.deepEqual(keys(found), ["cat", "pizza", "rain", "plain"]);
    const query = embedText("cat");
    const texts: Record<string, string> = { cat: "my cat and my dog", pizza: "pizza and pasta", rain: "rain rain sun" };
    for (const item of found.slice(0, 3)) {
      assert.ok(Math.abs(item.score! - cosine(query, embedText(texts[item.key]))) < 1e-5, item.key);
    }
    assert.equal(found[3].score, undefined); // no vector: after every scored item

    // A query with a filter, and paging by rank.
    const food = await store.search(main, { query: "cat", filter: { kind: "food" } });
    assert.deepEqual(keys(food), ["pizza"]);
    assert.ok(food[0].score !== undefined);
    assert.deepEqual(keys(await store.search(main, { query: "cat", limit: 1, offset: 1 })), ["pizza"]);

    // The same text in several items is embedded once.
    calls.length = 0;
    await store.batch([
      { namespace: [r, "copies"], key: "a", value: { text: "sun" } },
      { namespace: [r, "copies"], key: "b", value: { text: "sun" } },
    ]);
    assert.deepEqual(calls, [["sun"]]);
  });

  test("a put's own fields: nested paths, every element of a list, the whole value", async () => {
    const calls: string[][] = [];
    const store = newClient({ store: { index: { dims: DIMS, embed: recordingEmbed(calls) } } }).store;
    const ns = [root()];

    await store.put(ns, "titled", { title: { main: "rain" }, text: "pizza" }, ["title.main"]);
    await store.put(ns, "tagged", { tags: ["sun", "code"], text: "dog" }, ["tags[*]"]);
    await store.put(ns, "whole", { a: "tests" }); // the default field "$": the value as JSON
    await store.put(ns, "last", { tags: ["cat", "pasta"] }, ["tags[-1]"]);
    assert.deepEqual(calls, [["rain"], ["sun", "code"], [JSON.stringify({ a: "tests" })], ["pasta"]]);

    // An item with several vectors scores by the nearest one.
    const [top] = await store.search(ns, { query: "code" });
    assert.equal(top.key, "tagged");
    assert.ok(Math.abs(top.score! - 1) < 1e-6);
    assert.equal((await store.search(ns, { query: "rain" }))[0].key, "titled");
    assert.equal((await store.search(ns, { query: "pasta" }))[0].key, "last");
  });

  test("without an index config a query is ignored, as in LangGraph; bad vectors are refused", async () => {
    const ns = [root()];
    await client.store.put(ns, "a", { text: "cat" });
    await client.store.put(ns, "b", { text: "dog" });
    const found = await client.store.search(ns, { query: "cat" });
    assert.deepEqual(keys(found), ["b", "a"]);
    assert.ok(found.every((item) => item.score === undefined));

    const short = newClient({ store: { index: { dims: DIMS, embed: (texts) => texts.map(() => [1, 2]) } } }).store;
    await assert.rejects(short.put(ns, "c", { text: "x" }), RangeError);
    assert.equal(await client.store.get(ns, "c"), null);
    assert.throws(() => newClient({ store: { index: { dims: 0, embed: () => [] } } }), RangeError);
    assert.throws(() => newClient({ store: { index: { dims: 3 } } }), TypeError);
    assert.throws(() => newClient({ store: { index: { dims: 3, embed: () => [], fields: ["a[1"] } } }), RangeError);
  });
});

// --- inside workflows ------------------------------------------------------------------

const saveFact = task("saveFact", async (input: { user: string; fact: string }) => {
  await getStore().put(["users", input.user, "facts"], input.fact, { fact: input.fact });
  return input.fact;
});

const remember = entrypoint({ name: "remember" }, async (input: { user: string; fact: string; viaTask: boolean }) => {
  if (input.viaTask) return saveFact({ user: input.user, fact: input.fact });
  const item = await getStore().put(["users", input.user, "facts"], input.fact, { fact: input.fact });
  return item.key;
});

const recall = entrypoint({ name: "recall" }, async (user: string, config) => {
  const items = await config.store!.search(["users", user, "facts"]);
  return items.map((item) => item.value.fact as string).sort();
});

describe("getStore() and config.store in a worker", () => {
  test("an entrypoint writes a memory in one thread and another reads it in another thread", async () => {
    const worker = new Worker({ address: server.address, functions: [saveFact, remember, recall], log: () => undefined });
    const teamB = new Worker({
      address: server.address,
      namespace: "team-b",
      functions: [saveFact, remember, recall],
      log: () => undefined,
    });
    const running = [worker.run(), teamB.run()];
    try {
      await Promise.all([worker.waitConnected(), teamB.waitConnected()]);
      const user = root();
      const a = await client.invoke(remember, { user, fact: "likes pizza", viaTask: false }, { threadId: `${user}-a` });
      assert.equal(a.output, "likes pizza");
      const b = await client.invoke(remember, { user, fact: "has a cat", viaTask: true }, { threadId: `${user}-b` });
      assert.equal(b.output, "has a cat");

      const c = await client.invoke(recall, user, { threadId: `${user}-c` });
      assert.deepEqual(c.output, ["has a cat", "likes pizza"]);
      // The client reaches the same memories.
      assert.deepEqual((await client.store.get(["users", user, "facts"], "has a cat"))?.value, { fact: "has a cat" });

      // A worker of another namespace writes and reads that namespace's store.
      const teamBClient = newClient({ namespace: "team-b" });
      const other = await teamBClient.invoke(recall, user, { threadId: `${user}-d` });
      assert.deepEqual(other.output, []);
      await teamBClient.invoke(remember, { user, fact: "team b only", viaTask: true }, { threadId: `${user}-e` });
      assert.deepEqual((await teamBClient.invoke(recall, user, { threadId: `${user}-f` })).output, ["team b only"]);
      assert.deepEqual((await client.invoke(recall, user, { threadId: `${user}-g` })).output, ["has a cat", "likes pizza"]);
    } finally {
      await Promise.all([worker.stop({ graceMs: 1000 }), teamB.stop({ graceMs: 1000 })]);
      await Promise.all(running);
    }
  });

  test("getStore() outside a task or an entrypoint throws", () => {
    assert.throws(() => getStore(), /only be called inside a task or an entrypoint/);
  });
});
