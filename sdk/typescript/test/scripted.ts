/**
 * Fake services for the worker's unit tests: `listening` serves any
 * http2 handler on 127.0.0.1, and `startScripted` is a WorkerService that
 * welcomes a worker, hands it the given assignments, answers its task calls
 * when asked to, and keeps every message the worker sends.
 */

import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import type { JsonValue, MessageInitShape } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  WorkerService,
  type ConnectRequest,
  type ConnectResponseSchema,
  type ScheduleTask,
  type TaskAssignmentSchema,
} from "../src/gen/cairn/v1/worker_service_pb.js";
import { AsyncQueue } from "../src/queue.js";
import { toValue } from "../src/values.js";

export type Assignment = MessageInitShape<typeof TaskAssignmentSchema>;
export type Sent = ConnectRequest["kind"];

export interface Listening {
  address: string;
  close(): Promise<void>;
}

/** Listens on a free port of 127.0.0.1; close() ends open sessions too (a
 * client keeps its connection open otherwise). */
export async function listening(
  server: http2.Http2Server | http2.Http2SecureServer,
): Promise<Listening> {
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of sessions) session.destroy();
      return closed;
    },
  };
}

const OUTCOMES = new Set(["completed", "failed", "interrupted", "suspended", "sleeping"]);

export interface Scripted extends Listening {
  /** Every message the worker sent but its hello, in order. */
  sent: Sent[];
  /** The outcome the worker reported for `taskId` (completed, failed, sleeping, ...). */
  outcome(taskId: string): Promise<Sent>;
}

/** A WorkerService that hands the worker `assignments`; with `answer`, each
 * task call gets `answer(call)` as its result, as the service's
 * ChildOutcome would carry it. */
export async function startScripted(
  assignments: Assignment[],
  answer?: (call: ScheduleTask) => JsonValue,
): Promise<Scripted> {
  const sent: Sent[] = [];
  const waiters: { taskId: string; wake: (kind: Sent) => void }[] = [];
  const taskOf = (kind: Sent) => (kind.value as { taskId?: string } | undefined)?.taskId;
  const routes = (router: ConnectRouter) => {
    router.service(WorkerService, {
      async *connect(requests) {
        const responses = new AsyncQueue<MessageInitShape<typeof ConnectResponseSchema>>();
        responses.push({ kind: { case: "welcome", value: { workerId: "w-scripted" } } });
        for (const value of assignments) responses.push({ kind: { case: "assignment", value } });
        void (async () => {
          try {
            for await (const { kind } of requests) {
              if (kind.case === "hello") continue;
              sent.push(kind);
              if (kind.case === "schedule" && answer !== undefined) {
                const { parentTaskId, index } = kind.value;
                const result = toValue(answer(kind.value), "result");
                const outcome = { case: "result" as const, value: result };
                responses.push({ kind: { case: "childOutcome", value: { parentTaskId, index, outcome } } });
              }
              if (!OUTCOMES.has(kind.case ?? "")) continue;
              for (const waiter of waiters.filter((w) => w.taskId === taskOf(kind))) {
                waiters.splice(waiters.indexOf(waiter), 1);
                waiter.wake(kind);
              }
            }
          } catch {
            // the worker hung up
          } finally {
            responses.close();
          }
        })();
        yield* responses;
      },
    });
  };
  const served = await listening(http2.createServer(connectNodeAdapter({ routes })));
  return {
    ...served,
    sent,
    outcome(taskId) {
      const made = sent.find((kind) => OUTCOMES.has(kind.case ?? "") && taskOf(kind) === taskId);
      if (made) return Promise.resolve(made);
      return new Promise((wake) => waiters.push({ taskId, wake }));
    },
  };
}
