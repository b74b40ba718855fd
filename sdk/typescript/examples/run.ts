/**
 * Runs both cross-language workflows of the example and prints what they return.
 *
 *     node dist/examples/run.js [127.0.0.1:50051]
 */

import { Client, Command } from "../src/index.js";

const client = new Client({ address: process.argv[2] ?? "127.0.0.1:50051" });
const threadId = `example-${Date.now()}`;

// A TypeScript entrypoint calling a Python task, stopping at an interrupt.
let run = await client.invoke("ts_essay", "cats", { threadId: `${threadId}-ts` });
console.log(run.state, run.interrupts[0]?.value);
run = await client.invoke("ts_essay", new Command({ resume: true }), { threadId: `${threadId}-ts` });
console.log(run.state, run.output);

// A Python entrypoint calling a TypeScript task, streaming its custom data.
for await (const event of client.stream("py_essay", "owls", {
  threadId: `${threadId}-py`,
  streamMode: ["custom", "updates"],
})) {
  if (event.run) console.log(event.run.state, event.run.output ?? "");
  else console.log(event.mode, event.data);
}
client.close();
