/**
 * A real `cairn serve` with one worker connected and a client, for the
 * suites that run functions end to end; `stop()` ends all three.
 */

import { Client, Worker, type WorkerOptions } from "../src/index.js";
import { startServer, type Server, type ServerOptions } from "./server.js";

export interface Served {
  server: Server;
  worker: Worker;
  client: Client;
  stop(): Promise<void>;
}

export async function serveFunctions(
  functions: WorkerOptions["functions"],
  serverOptions: ServerOptions = {},
): Promise<Served> {
  const server = await startServer(serverOptions);
  const worker = new Worker({ address: server.address, functions });
  const running = worker.run();
  const client = new Client({ address: server.address });
  const stop = async () => {
    client.close();
    await worker.stop({ graceMs: 1000 });
    await running;
    await server.stop();
  };
  try {
    await worker.waitConnected();
  } catch (error) {
    await stop();
    throw error;
  }
  return { server, worker, client, stop };
}
