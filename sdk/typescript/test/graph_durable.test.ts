/**
 * The Graph API examples of LangGraph's durable-execution guide
 * (examples/graph_durable.ts), against a real `cairn serve` and an HTTP
 * server in this process that counts the requests the graph makes: side
 * effects in tasks inside a node are made once, a failed run resumes from the
 * node that failed without repeating the requests that succeeded, and an
 * interrupted run resumes with `new Command({ resume })`, in each durability
 * mode.
 */

import assert from "node:assert/strict";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { Command, RunFailedError, type Durability } from "../src/index.js";
import { graph, makeRequest, runOnce } from "../examples/graph_durable.js";
import { serveFunctions, type Served } from "./served.js";

describe("durable execution of a graph (LangGraph's guide, Graph API)", () => {
  let served: Served;
  let http: HttpServer;
  let base = "";
  const hits = new Map<string, number>();

  before(async () => {
    http = createServer((request, response) => {
      const path = request.url ?? "/";
      const seen = (hits.get(path) ?? 0) + 1;
      hits.set(path, seen);
      // /flaky-* fails its first request, as a busy API would.
      if (path.startsWith("/flaky") && seen === 1) {
        response.writeHead(503).end("busy");
        return;
      }
      response.writeHead(200, { "content-type": "text/plain" }).end(`page ${path} `.repeat(20));
    });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    served = await serveFunctions([graph, makeRequest]);
  });

  after(async () => {
    await served?.stop();
    await new Promise<void>((resolve) => http.close(() => resolve()));
  });

  test("a task inside a node: a resume repeats only the request that failed", async () => {
    const urls = [`${base}/a`, `${base}/flaky-1`, `${base}/b`];
    await assert.rejects(
      served.client.invoke(graph, { urls }, { threadId: "recover", durability: "sync" }),
      (error: RunFailedError) => {
        assert.match(error.run.error!.message, /GET .*\/flaky-1: 503/);
        return true;
      },
    );
    const failed = await served.client.getState("recover");
    assert.deepEqual(failed.next, ["callApi"]);

    // As `graph.invoke(null, config)`: the failed node runs again.
    const run = await served.client.invoke(graph, null, { threadId: "recover", durability: "sync" });
    assert.equal(run.state, "interrupted");
    const asked = run.interrupts[0].value as { results: string[] };
    assert.deepEqual(asked.results, ["/a", "/flaky-1", "/b"].map((p) => `page ${p} `.repeat(20).slice(0, 100)));
    // The requests that succeeded were recorded: not made again.
    assert.deepEqual(Object.fromEntries(hits), { "/a": 1, "/flaky-1": 2, "/b": 1 });

    const done = await served.client.invoke(graph, new Command({ resume: false }), { threadId: "recover" });
    assert.deepEqual(done.output, { urls, results: asked.results, approved: false });
    assert.deepEqual(Object.fromEntries(hits), { "/a": 1, "/flaky-1": 2, "/b": 1 });
  });

  for (const durability of ["exit", "async", "sync"] as const satisfies Durability[]) {
    test(`durability "${durability}": interrupted, resumed, each request made once`, async () => {
      const urls = [`${base}/${durability}-1`, `${base}/flaky-${durability}`];
      const run = await runOnce(served.client, urls, durability, `mode-${durability}`, () => undefined);
      assert.equal(run.state, "succeeded");
      assert.equal(run.durability, durability);
      const output = run.output as { results: string[]; approved: boolean };
      assert.equal(output.approved, true);
      assert.equal(output.results.length, 2);
      assert.equal(hits.get(`/${durability}-1`), 1);
      assert.equal(hits.get(`/flaky-${durability}`), 2);
      const state = await served.client.getState(`mode-${durability}`);
      assert.deepEqual(state.next, []);
      assert.deepEqual(state.values, output);
    });
  }
});
