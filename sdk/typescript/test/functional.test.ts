/**
 * The examples of langgraphjs's functional-API docs, ported to Cairn and run
 * against a real `cairn serve` process and an in-process worker.
 */

import assert from "node:assert/strict";
import { after, before, beforeEach, describe, test } from "node:test";
import {
  Client,
  Command,
  RunFailedError,
  entrypoint,
  getPreviousState,
  getWriter,
  interrupt,
  task,
} from "../src/index.js";
import { serveFunctions, type Served } from "./served.js";

const executions = new Map<string, number>();
const count = (name: string) => executions.set(name, (executions.get(name) ?? 0) + 1);

// --- essay written by a task, then reviewed by a human ------------------------------

const writeEssay = task("writeEssay", async (topic: string) => {
  count("writeEssay");
  return `An essay about topic: ${topic}`;
});

const essayWorkflow = entrypoint({ name: "essayWorkflow" }, async (topic: string) => {
  const essay = await writeEssay(topic);
  const isApproved = interrupt<boolean>({
    essay,
    action: "Please approve/reject the essay",
  });
  return { essay, isApproved };
});

// --- a task fails once; the resume does not re-run the slow task ---------------------

const slowTask = task("slowTask", async () => {
  count("slowTask");
  await new Promise((resolve) => setTimeout(resolve, 50)); // the slow work itself
  return "Ran slow task.";
});

const failingTask = task("failingTask", async () => {
  count("failingTask");
  if (executions.get("failingTask") === 1) throw new Error("Simulated failure");
  return "Ran failing task.";
});

const flakyWorkflow = entrypoint({ name: "flakyWorkflow" }, async (_inputs: { any_input: string }) => {
  const slow = await slowTask();
  const failing = await failingTask();
  return [slow, failing];
});

// --- previous state ------------------------------------------------------------------

const accumulate = entrypoint({ name: "accumulate" }, async (n: number) => {
  const previous = getPreviousState<number>() ?? 0;
  return n + previous;
});

const finalWorkflow = entrypoint({ name: "finalWorkflow" }, async (n: number) => {
  const previous = getPreviousState<number>() ?? 0;
  // Return the previous value to the caller, save 2 * n for next time.
  return entrypoint.final({ value: previous, save: 2 * n });
});

// --- parallel task calls ---------------------------------------------------------------

const inFlight = { now: 0, max: 0 };
let releaseAddOne: () => void = () => undefined;
let addOneGate = new Promise<void>((resolve) => (releaseAddOne = resolve));

const addOne = task("addOne", async (n: number) => {
  inFlight.now += 1;
  inFlight.max = Math.max(inFlight.max, inFlight.now);
  // The calls overlap when several are in flight before the first returns.
  if (inFlight.now >= 3) releaseAddOne();
  await addOneGate;
  inFlight.now -= 1;
  return n + 1;
});

const parallel = entrypoint({ name: "parallel" }, async (numbers: number[]) =>
  Promise.all(numbers.map((n) => addOne(n))),
);

// --- custom and updates stream events ------------------------------------------------

const shout = task("shout", async (word: string) => {
  getWriter()({ progress: `shouting ${word}` });
  return word.toUpperCase();
});

const streamWorkflow = entrypoint({ name: "streamWorkflow" }, async (words: string[], config) => {
  config.writer("starting");
  const loud: string[] = [];
  for (const word of words) loud.push(await shout(word));
  config.writer("done");
  return loud.join(" ");
});

const FUNCTIONS = [
  writeEssay,
  essayWorkflow,
  slowTask,
  failingTask,
  flakyWorkflow,
  accumulate,
  finalWorkflow,
  addOne,
  parallel,
  shout,
  streamWorkflow,
];

describe("langgraphjs functional-API examples", () => {
  let served: Served;
  let client: Client;

  before(async () => {
    served = await serveFunctions(FUNCTIONS);
    client = served.client;
  });

  after(() => served?.stop());

  beforeEach(() => executions.clear());

  test("essay review: interrupt, then resume with a Command", async () => {
    const run = await client.invoke(essayWorkflow, "cat", { threadId: "essay-1" });
    assert.equal(run.state, "interrupted");
    assert.equal(run.interrupts.length, 1);
    const [pending] = run.interrupts;
    assert.deepEqual(pending.value, {
      essay: "An essay about topic: cat",
      action: "Please approve/reject the essay",
    });
    const state = await client.getState("essay-1");
    assert.deepEqual(state.next, ["essayWorkflow"]);
    assert.deepEqual(
      state.interrupts.map((i) => i.id),
      [pending.id],
    );

    const resumed = await client.invoke(essayWorkflow, new Command({ resume: true }), {
      threadId: "essay-1",
    });
    assert.equal(resumed.state, "succeeded");
    assert.deepEqual(resumed.output, { essay: "An essay about topic: cat", isApproved: true });
    assert.equal(executions.get("writeEssay"), 1); // replayed from the journal, not re-run
  });

  test("resume after an error does not re-run the finished slow task", async () => {
    const failure = await client
      .invoke(flakyWorkflow, { any_input: "foobar" }, { threadId: "flaky" })
      .then(() => assert.fail("the run should fail"))
      .catch((error: unknown) => error);
    assert.ok(failure instanceof RunFailedError);
    assert.equal(failure.run.error?.type, "Error");
    assert.equal(failure.run.error?.message, "Simulated failure");

    const run = await client.invoke(flakyWorkflow, null, { threadId: "flaky" });
    assert.deepEqual(run.output, ["Ran slow task.", "Ran failing task."]);
    assert.equal(executions.get("slowTask"), 1);
    assert.equal(executions.get("failingTask"), 2);
  });

  test("getPreviousState accumulates: 1 then 3", async () => {
    const first = await client.invoke(accumulate, 1, { threadId: "acc" });
    const second = await client.invoke(accumulate, 2, { threadId: "acc" });
    assert.deepEqual([first.output, second.output], [1, 3]);
  });

  test("entrypoint.final returns one value and saves another", async () => {
    const outputs = [];
    for (const n of [3, 1, 5]) {
      outputs.push((await client.invoke(finalWorkflow, n, { threadId: "final" })).output);
    }
    assert.deepEqual(outputs, [0, 6, 2]);
  });

  test("parallel addOne calls run at the same time", async () => {
    inFlight.max = 0;
    addOneGate = new Promise<void>((resolve) => (releaseAddOne = resolve));
    const run = await client.invoke(parallel, [1, 2, 3, 4, 5], { threadId: "par" });
    assert.deepEqual(run.output, [2, 3, 4, 5, 6]);
    assert.ok(inFlight.max >= 3, `at most ${inFlight.max} calls overlapped`);
  });

  test("custom stream data from the entrypoint and its tasks, in order", async () => {
    const parts = [];
    for await (const event of client.stream(streamWorkflow, ["a", "b"], {
      threadId: "stream",
      streamMode: ["custom", "updates"],
    })) {
      if (event.mode !== "lifecycle") parts.push([event.mode, event.data]);
    }
    assert.deepEqual(parts, [
      ["custom", "starting"],
      ["custom", { progress: "shouting a" }],
      ["updates", { shout: "A" }],
      ["custom", { progress: "shouting b" }],
      ["updates", { shout: "B" }],
      ["custom", "done"],
      ["updates", { streamWorkflow: "A B" }],
    ]);
  });
});
