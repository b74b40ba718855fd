/**
 * LangGraph's conformance suite for checkpoint savers
 * (@langchain/langgraph-checkpoint-validation), run against CairnSaver and a
 * real `cairn serve`. The suite is written with vitest's global
 * describe/it/expect, so vitest runs this file (vitest.config.mjs), not
 * node --test; `npm test` runs both.
 *
 * The suite lists checkpoints across all threads and expects to see only its
 * own, so each checkpointer it creates starts from an emptied store (there is
 * only ever one alive). The opt-in getDeltaChannelHistory cases run too.
 */

import {
  deltaChannelHistoryTests,
  validate,
  type CheckpointSaverTestInitializer,
} from "@langchain/langgraph-checkpoint-validation";
import { CairnSaver } from "@cairn/sdk/langgraph";
import { startServer, type Server } from "./server.js";

let server: Server | undefined;

/** Deletes every thread the store holds, through the saver itself. */
async function emptyStore(saver: CairnSaver): Promise<void> {
  const threads = new Set<string>();
  for await (const tuple of saver.list({})) {
    threads.add(String(tuple.config.configurable?.thread_id));
  }
  for (const thread of threads) await saver.deleteThread(thread);
}

const initializer: CheckpointSaverTestInitializer<CairnSaver> = {
  checkpointerName: "@cairn/sdk CairnSaver",
  beforeAllTimeout: 30_000,
  async beforeAll() {
    server = await startServer();
  },
  async afterAll() {
    await server?.stop();
  },
  async createCheckpointer() {
    // Small pages, so that list() crosses pages once the server pages.
    const saver = new CairnSaver({ address: server!.address, listPageSize: 3 });
    await emptyStore(saver);
    return saver;
  },
  destroyCheckpointer(saver) {
    saver.close();
  },
};

validate(initializer);
deltaChannelHistoryTests(initializer);
