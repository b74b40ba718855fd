/** One HTTP/2 connection per client or worker, speaking gRPC. */

import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { credentialsInterceptor, tlsSessionOptions, warnIfPlaintext, type Credentials } from "./credentials.js";

export interface Connection {
  transport: Transport;
  /** Closes the connection and every stream on it. */
  close(): void;
}

export interface ConnectOptions {
  keepaliveMs?: number;
  /** The credential and namespace every call sends, and the TLS settings
   * (resolveCredentials); plaintext without credentials when unset. */
  credentials?: Credentials;
}

/**
 * The URL of `address`: host:port (TLS when `credentials` have TLS settings,
 * else plaintext, as for the Python SDK and grpcurl) or an http(s):// URL.
 * Throws for an http:// URL with TLS on; warns (once) when a credential
 * would travel in plaintext to another machine.
 */
export function connectionUrl(address: string, credentials: Credentials = {}): string {
  const tls = credentials.tls !== undefined;
  if (tls && address.startsWith("http://")) {
    throw new Error(`address ${address} says http:// but TLS is on; give host:port or https://`);
  }
  warnIfPlaintext(credentials, address);
  return /^https?:\/\//.test(address) ? address : `${tls ? "https" : "http"}://${address}`;
}

export function connect(address: string, options: ConnectOptions = {}): Connection {
  const { credentials = {} } = options;
  const baseUrl = connectionUrl(address, credentials);
  const pingIntervalMs = options.keepaliveMs ?? 10_000;
  const sessionManager = new Http2SessionManager(
    baseUrl,
    {
      pingIntervalMs,
      pingTimeoutMs: 5_000,
      // Open streams are pinged; an idle connection is checked with a PING
      // before its next request. Pinging idle connections too made connect-node
      // 2.1 schedule a PING on a session that close() had destroyed (when a
      // stream closed afterwards), which threw an uncaught exception
      // ERR_HTTP2_INVALID_SESSION one interval later.
      pingIdleConnection: false,
    },
    credentials.tls === undefined ? undefined : tlsSessionOptions(credentials.tls),
  );
  // One interceptor adds the metadata to every call, unary and streaming.
  const transport = createGrpcTransport({
    baseUrl,
    sessionManager,
    interceptors: [credentialsInterceptor(credentials)],
  });
  return { transport, close: () => sessionManager.abort() };
}
