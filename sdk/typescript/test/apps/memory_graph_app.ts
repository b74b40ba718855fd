/**
 * A langgraphjs application that keeps all of its persistence in Cairn:
 * CairnSaver as its checkpointer and CairnStore (with semantic search) as
 * its store. One invocation per process, for test/langgraph_store.test.ts:
 *
 *     node dist/test/apps/memory_graph_app.js --address HOST:PORT --thread T --user U --question Q
 *     node dist/test/apps/memory_graph_app.js --address HOST:PORT --thread T --resume ANSWER
 *
 * The graph recalls the user's memories nearest to the question (a store
 * search in a node), asks a human what to remember (interrupt), and
 * remembers the answer (a store put in another node). The process prints
 * the invocation's output as one JSON line and exits.
 */

import { parseArgs } from "node:util";
import {
  Annotation,
  Command,
  END,
  START,
  StateGraph,
  interrupt,
  type LangGraphRunnableConfig,
} from "@langchain/langgraph";
import { CairnSaver, CairnStore } from "@cairn/sdk/langgraph";
import { DIMS, WordEmbeddings } from "../word_embeddings.js";

const { values: args } = parseArgs({
  options: {
    address: { type: "string" },
    thread: { type: "string" },
    user: { type: "string" },
    question: { type: "string" },
    resume: { type: "string" },
  },
});

const State = Annotation.Root({
  user: Annotation<string>,
  question: Annotation<string>,
  /** The memories recalled: `fact@score`. */
  recalled: Annotation<string[]>,
  answer: Annotation<string>,
});

const facts = (user: string) => ["users", user, "facts"];

const graph = new StateGraph(State)
  .addNode("recall", async (state: typeof State.State, config: LangGraphRunnableConfig) => {
    const found = await config.store!.search(facts(state.user), { query: state.question, limit: 3 });
    return { recalled: found.map((item) => `${item.value.fact}@${item.score?.toFixed(3)}`) };
  })
  .addNode("ask", (state: typeof State.State) => {
    const answer = interrupt<unknown, string>({ question: state.question, recalled: state.recalled });
    return { answer };
  })
  .addNode("remember", async (state: typeof State.State, config: LangGraphRunnableConfig) => {
    await config.store!.put(facts(state.user), `fact-${state.answer.length}`, { fact: state.answer });
    return {};
  })
  .addEdge(START, "recall")
  .addEdge("recall", "ask")
  .addEdge("ask", "remember")
  .addEdge("remember", END);

const checkpointer = new CairnSaver({ address: args.address });
const store = new CairnStore({ address: args.address, index: { dims: DIMS, embeddings: new WordEmbeddings(), fields: ["fact"] } });
try {
  const app = graph.compile({ checkpointer, store });
  const config = { configurable: { thread_id: args.thread! } };
  const output =
    args.resume !== undefined
      ? await app.invoke(new Command({ resume: args.resume }), config)
      : await app.invoke({ user: args.user!, question: args.question!, recalled: [] }, config);
  process.stdout.write(`${JSON.stringify(output)}\n`);
} finally {
  checkpointer.close();
  store.close();
}
