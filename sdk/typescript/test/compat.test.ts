/**
 * Runs every scenario of compat/scenarios through this SDK against a real
 * `cairn serve` process.
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { CairnError, Client, Command, RunFailedError, Worker, type Run } from "../src/index.js";
import { Scenario, loadScenarios } from "./compat.js";
import { startServer, type Server } from "./server.js";

type Step = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The scenario's worker; `drop` ends its stream while it holds tasks. */
class Workers {
  private current: { worker: Worker; running: Promise<void> } | undefined;

  constructor(
    private readonly address: string,
    private readonly scenario: Scenario,
  ) {}

  async start(): Promise<void> {
    const worker = new Worker({
      address: this.address,
      functions: [...this.scenario.functions.values()],
      log: () => undefined,
    });
    this.current = { worker, running: worker.run() };
    await worker.waitConnected();
  }

  async drop(): Promise<void> {
    const current = this.current;
    this.current = undefined;
    if (!current) return;
    await current.worker.stop({ graceMs: 0 });
    await current.running;
  }
}

/** JSON with sorted keys: protobuf Structs do not keep key order. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

function commandFor(run: Step, last: Run | undefined): unknown {
  if ("input" in run) return run.input;
  if ("resume" in run) return new Command({ resume: run.resume });
  if ("resume_by_id" in run) {
    assert.ok(last, "resume_by_id needs an interrupted run before it");
    const byValue = new Map(last.interrupts.map((i) => [canonical(i.value), i.id]));
    const resume = Object.fromEntries(
      (run.resume_by_id as Step[]).map((a) => [byValue.get(canonical(a.interrupt))!, a.resume]),
    );
    return new Command({ resume });
  }
  assert.ok(run.retry, `a run needs input, resume, resume_by_id or retry: ${JSON.stringify(run)}`);
  return null;
}

async function perform(client: Client, target: string, value: unknown, run: Step, threadId: string) {
  if (!("stream_mode" in run)) {
    try {
      return { final: await client.invoke(target, value, { threadId }), chunks: [] };
    } catch (error) {
      if (error instanceof RunFailedError) return { final: error.run, chunks: [] };
      throw error;
    }
  }
  const chunks: unknown[][] = [];
  let final: Run | undefined;
  for await (const event of client.stream(target, value, { threadId, streamMode: run.stream_mode })) {
    if (event.run) final = event.run;
    else chunks.push([event.mode, event.data]);
  }
  assert.ok(final);
  return { final, chunks };
}


function check(expect: Step, run: Run, chunks: unknown[][], scenario: Scenario) {
  if ("state" in expect) assert.equal(run.state, expect.state, JSON.stringify(run));
  if ("output" in expect) assert.deepEqual(run.output, expect.output);
  if ("interrupts" in expect) {
    const got = run.interrupts.map((i) => canonical([i.value, i.index])).sort();
    const want = (expect.interrupts as Step[]).map((i) => canonical([i.value, i.index])).sort();
    assert.deepEqual(got, want);
  }
  if ("error" in expect) {
    assert.ok(run.error, "the run has no error");
    if ("type" in expect.error) assert.equal(run.error.type, expect.error.type);
    if ("message" in expect.error) assert.equal(run.error.message, expect.error.message);
    for (const part of expect.error.message_contains ?? []) {
      assert.ok(run.error.message.includes(part), `${run.error.message} lacks ${part}`);
    }
  }
  if ("events" in expect) assert.deepEqual(chunks, expect.events);
  for (const [name, count] of Object.entries(expect.executions ?? {})) {
    assert.equal(scenario.count(name), count, `${name} started ${scenario.count(name)} times`);
  }
}

describe("compatibility kit (compat/scenarios)", () => {
  let server: Server;
  let client: Client;

  before(async () => {
    server = await startServer();
    client = new Client({ address: server.address });
  });

  after(async () => {
    client?.close();
    await server?.stop();
  });

  for (const { name, spec } of loadScenarios()) {
    test(`${name}: ${spec.description}`, async () => {
      const scenario = new Scenario(spec);
      const workers = new Workers(server.address, scenario);
      await workers.start();
      const threadId = `compat-${name}-${randomUUID().slice(0, 8)}`;
      let last: Run | undefined;
      try {
        for (const [number, run] of spec.runs.entries()) {
          const expect = run.expect as Step;
          const pending = perform(client, spec.entrypoint, commandFor(run, last), run, threadId);
          pending.catch(() => undefined); // awaited below, after the disconnect
          if (run.disconnect_on_stall) {
            await scenario.stalled;
            await workers.drop();
            await workers.start();
          }
          let outcome;
          try {
            outcome = await pending;
          } catch (error) {
            assert.ok("rpc_error" in expect, `run ${number} failed: ${error}`);
            assert.ok(error instanceof CairnError);
            assert.equal(error.code, expect.rpc_error.code);
            assert.equal(error.reason, expect.rpc_error.reason);
            continue;
          }
          assert.ok(!("rpc_error" in expect), `run ${number} should have failed`);
          check(expect, outcome.final, outcome.chunks, scenario);
          last = outcome.final;
        }
      } finally {
        await workers.drop();
      }
    });
  }
});
