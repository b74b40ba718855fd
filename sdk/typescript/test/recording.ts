/**
 * An in-process gRPC server (connect-node on Node's HTTP/2, plaintext or TLS)
 * that records the metadata of every call it gets, for the credential and
 * tracing tests. It serves a few RPCs of each service: unary, server
 * streaming and bidirectional, enough for Client, Worker and CairnSaver calls
 * to complete; it can hand a connected worker assignments and record what
 * the worker reports.
 */

import http2 from "node:http2";
import type { TLSSocket } from "node:tls";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type ConnectRouter,
  type HandlerContext,
} from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { CheckpointService } from "../src/gen/cairn/v1/checkpoint_service_pb.js";
import { RunState } from "../src/gen/cairn/v1/run_pb.js";
import { RunService } from "../src/gen/cairn/v1/run_service_pb.js";
import { ThreadService } from "../src/gen/cairn/v1/thread_service_pb.js";
import {
  WorkerService,
  type ConnectRequest,
  type TaskAssignmentSchema,
} from "../src/gen/cairn/v1/worker_service_pb.js";
import { listening } from "./scripted.js";

/** What the server saw of one call. */
export interface Call {
  /** e.g. "GetThread". */
  method: string;
  authorization: string | null;
  namespace: string | null;
  /** The common name of the client certificate (mTLS), if one was presented. */
  peer: string | undefined;
  /** W3C trace context metadata. */
  traceparent: string | null;
  tracestate: string | null;
}

/** What a worker sent about one task: its outcome (completed, failed, ...). */
export type Report = ConnectRequest["kind"];

export interface RecordingServer {
  /** 127.0.0.1:port */
  address: string;
  calls: Call[];
  /** The first call of `method`: one already made, or the next one. */
  called(method: string): Promise<Call>;
  /** The outcome a worker reported for `taskId` (with `assignments`). */
  reported(taskId: string): Promise<Report>;
  close(): Promise<void>;
}

export interface RecordingServerOptions {
  /** Serve TLS with this certificate; with `clientCa`, require a client
   * certificate signed by it (mTLS). */
  tls?: { cert: string; key: string; clientCa?: string };
  /** Handed to each worker that connects, after the welcome. */
  assignments?: MessageInitShape<typeof TaskAssignmentSchema>[];
}

/** GetThread and GetTuple fail with these statuses for these thread ids. */
export const FAILING_THREADS: Record<string, [Code, string]> = {
  "no-credential": [Code.Unauthenticated, "UNAUTHENTICATED"],
  "too-weak": [Code.PermissionDenied, "PERMISSION_DENIED"],
};

const PEER = createContextKey<string | undefined>(undefined);

/** A google.rpc.ErrorInfo, as the Cairn server attaches one to its errors. */
function errorInfo(reason: string): { type: string; value: Uint8Array } {
  // Field 1 (reason) and field 2 (domain), both length-delimited.
  const value = new BinaryWriter()
    .tag(1, WireType.LengthDelimited)
    .string(reason)
    .tag(2, WireType.LengthDelimited)
    .string("cairn")
    .finish();
  return { type: "google.rpc.ErrorInfo", value };
}

/** Throws the status FAILING_THREADS gives `threadId`, as the Cairn server would. */
function refuse(threadId: string): void {
  const failure = FAILING_THREADS[threadId];
  if (!failure) return;
  const [code, reason] = failure;
  const error = new ConnectError(`refused: ${reason.toLowerCase()}`, code);
  error.details.push(errorInfo(reason));
  throw error;
}

export async function startRecordingServer(options: RecordingServerOptions = {}): Promise<RecordingServer> {
  const calls: Call[] = [];
  const waiters: { method: string; wake: (call: Call) => void }[] = [];
  const reports = new Map<string, Report>();
  const reportWaiters: { taskId: string; wake: (report: Report) => void }[] = [];
  const report = (taskId: string, kind: Report) => {
    reports.set(taskId, kind);
    for (const waiter of reportWaiters.filter((w) => w.taskId === taskId)) {
      reportWaiters.splice(reportWaiters.indexOf(waiter), 1);
      waiter.wake(kind);
    }
  };

  const record = (method: string, context: HandlerContext) => {
    const call: Call = {
      method,
      authorization: context.requestHeader.get("authorization"),
      namespace: context.requestHeader.get("cairn-namespace"),
      peer: context.values.get(PEER),
      traceparent: context.requestHeader.get("traceparent"),
      tracestate: context.requestHeader.get("tracestate"),
    };
    calls.push(call);
    for (const waiter of waiters.filter((w) => w.method === method)) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.wake(call);
    }
  };

  const routes = (router: ConnectRouter) => {
    router.service(ThreadService, {
      getThread(request, context) {
        record("GetThread", context);
        refuse(request.threadId);
        return { thread: { threadId: request.threadId } };
      },
    });
    router.service(RunService, {
      // Unary: a run that succeeded at once.
      invoke(request, context) {
        record("Invoke", context);
        const { threadId, target } = request;
        return { run: { runId: "run-1", threadId, target, state: RunState.SUCCEEDED } };
      },
      // Server streaming: no events.
      async *stream(_request, context) {
        record("Stream", context);
      },
      // Server streaming: a run with no events left.
      async *joinRun(_request, context) {
        record("JoinRun", context);
      },
      // Bidirectional: ends once the start message arrived.
      async *session(requests, context) {
        record("Session", context);
        for await (const _ of requests) return;
      },
    });
    router.service(WorkerService, {
      listWorkers(_request, context) {
        record("ListWorkers", context);
        return {};
      },
      // Bidirectional: welcomes the worker, then waits until it hangs up.
      async *connect(requests, context) {
        record("Connect", context);
        const iterator = requests[Symbol.asyncIterator]();
        await iterator.next();
        yield { kind: { case: "welcome", value: { workerId: "w-1" } } };
        for (const assignment of options.assignments ?? []) {
          yield { kind: { case: "assignment", value: assignment } };
        }
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
          const kind = next.value.kind;
          if (kind.case === "completed" || kind.case === "failed" || kind.case === "interrupted") {
            report(kind.value.taskId, kind);
          }
        }
      },
    });
    router.service(CheckpointService, {
      getTuple(request, context) {
        record("GetTuple", context);
        refuse(request.threadId);
        return {};
      },
    });
  };

  const handler = connectNodeAdapter({
    routes,
    contextValues: (request) => {
      // The client certificate of an mTLS connection, for the handlers.
      const cert = (request.socket as Partial<TLSSocket>).getPeerCertificate?.();
      return createContextValues().set(PEER, cert?.subject?.CN);
    },
  });

  const { tls } = options;
  const server = tls
    ? http2.createSecureServer(
        {
          cert: tls.cert,
          key: tls.key,
          ca: tls.clientCa,
          requestCert: tls.clientCa !== undefined,
          rejectUnauthorized: tls.clientCa !== undefined,
        },
        handler,
      )
    : http2.createServer(handler);
  const served = await listening(server);

  return {
    ...served,
    calls,
    called(method) {
      const made = calls.find((call) => call.method === method);
      if (made) return Promise.resolve(made);
      return new Promise((wake) => waiters.push({ method, wake }));
    },
    reported(taskId) {
      const made = reports.get(taskId);
      if (made) return Promise.resolve(made);
      return new Promise((wake) => reportWaiters.push({ taskId, wake }));
    },
  };
}
