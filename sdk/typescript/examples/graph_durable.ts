/**
 * The Graph API examples of LangGraph's durable-execution guide, on Cairn:
 * a StateGraph whose node makes its side effects (HTTP requests) inside a
 * `task`, so that a resumed run returns their recorded results instead of
 * making them again; a human review with `interrupt()`, resumed with
 * `new Command({ resume })`; and the three durability modes.
 *
 *     node dist/examples/graph_durable.js [127.0.0.1:50051] [url ...]
 *
 * It serves the graph from a worker in this process and runs it once per
 * durability mode. With langgraphjs the graph would be compiled with a
 * checkpointer; here the service keeps every checkpoint.
 */

import { pathToFileURL } from "node:url";
import {
  Annotation,
  Client,
  Command,
  END,
  RunFailedError,
  START,
  StateGraph,
  Worker,
  interrupt,
  task,
  type Durability,
} from "../src/index.js";

export const State = Annotation.Root({
  urls: Annotation<string[]>,
  results: Annotation<string[]>,
  approved: Annotation<boolean>,
});

/** The side effect, in a task: its result is recorded once it returns. */
export const makeRequest = task("makeRequest", async (url: string) => {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: ${response.status} ${response.statusText}`);
  const text = await response.text();
  return text.slice(0, 100);
});

/** The node calls the tasks in parallel; a replay of the node returns the
 * results already recorded and only makes the requests that have none. */
async function callApi(state: typeof State.State) {
  const requests = state.urls.map((url) => makeRequest(url));
  const results = await Promise.all(requests);
  return { results };
}

/** A human looks at the results: the run pauses here until it is resumed. */
function review(state: typeof State.State) {
  const approved = interrupt<boolean>({ results: state.results, question: "Use these results?" });
  return { approved };
}

export const graph = new StateGraph(State)
  .addNode("callApi", callApi)
  .addNode("review", review)
  .addEdge(START, "callApi")
  .addEdge("callApi", "review")
  .addEdge("review", END)
  .compile({ name: "durable_requests" });

/**
 * Run the graph on a new thread with `durability`: a failed request fails the
 * run, and the run is retried from where it stopped (`invoke(graph, null)`);
 * at the review it stops, and it is resumed with the answer.
 */
export async function runOnce(
  client: Client,
  urls: string[],
  durability: Durability,
  threadId: string,
  log: (...parts: unknown[]) => void = console.log,
) {
  let run;
  try {
    run = await client.invoke(graph, { urls }, { threadId, durability });
  } catch (error) {
    if (!(error instanceof RunFailedError)) throw error;
    log(`${durability}: failed (${error.run.error?.message}); resuming from the failed node`);
    run = await client.invoke(graph, null, { threadId, durability });
  }
  log(`${durability}: ${run.state}, asking`, run.interrupts[0]?.value);
  run = await client.invoke(graph, new Command({ resume: true }), { threadId, durability });
  log(`${durability}: ${run.state}`, run.output);
  return run;
}

async function main(): Promise<void> {
  const address = process.argv[2] ?? "127.0.0.1:50051";
  const urls = process.argv.length > 3 ? process.argv.slice(3) : ["https://www.example.com"];
  const worker = new Worker({ address, functions: [graph, makeRequest] });
  const serving = worker.run();
  await worker.waitConnected();
  const client = new Client({ address });
  try {
    for (const durability of ["exit", "async", "sync"] as const) {
      await runOnce(client, urls, durability, `durable-${durability}-${Date.now()}`);
    }
  } finally {
    client.close();
    await worker.stop();
    await serving;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
