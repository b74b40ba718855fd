/** One HTTP/2 connection per client or worker, speaking gRPC. */

import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

export interface Connection {
  transport: Transport;
  /** Closes the connection and every stream on it. */
  close(): void;
}

/** `address` is host:port (plaintext), as for the Python SDK and grpcurl. */
export function connect(address: string, options: { keepaliveMs?: number } = {}): Connection {
  const baseUrl = /^https?:\/\//.test(address) ? address : `http://${address}`;
  const pingIntervalMs = options.keepaliveMs ?? 10_000;
  const sessionManager = new Http2SessionManager(baseUrl, {
    pingIntervalMs,
    pingTimeoutMs: 5_000,
    // Open streams are pinged; an idle connection is checked with a PING
    // before its next request. Pinging idle connections too made connect-node
    // 2.1 schedule a PING on a session that close() had destroyed (when a
    // stream closed afterwards), which threw an uncaught exception
    // ERR_HTTP2_INVALID_SESSION one interval later.
    pingIdleConnection: false,
  });
  const transport = createGrpcTransport({ baseUrl, sessionManager });
  return { transport, close: () => sessionManager.abort() };
}
