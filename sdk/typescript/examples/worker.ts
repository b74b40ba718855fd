/**
 * A TypeScript worker that runs next to examples/python_worker.py:
 * it serves the task `shout` (which the Python entrypoint `py_essay` calls) and
 * the entrypoint `ts_essay` (which calls the Python task `summarize`).
 *
 *     node dist/examples/worker.js [127.0.0.1:50051]
 */

import { Worker, entrypoint, getWriter, interrupt, remoteTask, task } from "../src/index.js";

const shout = task("shout", async (text: string) => {
  getWriter()({ shouting: text });
  return text.toUpperCase();
});

// Served by the Python worker; called here by name.
const summarize = remoteTask<string, string>("summarize");

const tsEssay = entrypoint({ name: "ts_essay" }, async (topic: string) => {
  const summary = await summarize(`An essay about ${topic}`);
  const approved = interrupt<boolean>({ summary, action: "Approve?" });
  return { summary, approved };
});

const worker = new Worker({ address: process.argv[2] ?? "127.0.0.1:50051", functions: [shout, tsEssay] });
process.on("SIGINT", () => void worker.stop());
process.on("SIGTERM", () => void worker.stop());
const running = worker.run();
await worker.waitConnected();
console.log(`typescript worker ${worker.workerId} ready`);
await running;
