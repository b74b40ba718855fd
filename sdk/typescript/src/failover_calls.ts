/**
 * Unary calls to one Cairn service over the addresses of a deployment, for
 * the langgraphjs adapters (`CairnSaver`, `CairnStore`), whose calls are all
 * safe to send twice: one HTTP/2 connection per address, opened on first
 * use; a call whose server is unreachable goes to the next address until
 * the failover budget is spent (failover.ts). After `close()` every call
 * throws UnavailableError.
 *
 *     const calls = new FailoverCalls("CairnStore", StoreService, options);
 *     const response = await calls.call((rpc, opts) => rpc.getItem(request, opts));
 */

import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client as RpcClient } from "@connectrpc/connect";
import { resolveCredentials, unreachableHint, type CredentialOptions } from "./credentials.js";
import { UnavailableError, fromRpcError } from "./errors.js";
import { Failover, connectionLoss, parseAddresses, unavailable, type Addresses } from "./failover.js";
import { connect, type Connection } from "./transport.js";

/** Where and how the calls go: the options both adapters take. */
export interface FailoverCallOptions extends CredentialOptions {
  /**
   * host:port of the Cairn service, or of several replicas of it (a
   * comma-separated string or an array); default "127.0.0.1:50051".
   */
  address?: Addresses;
  /** Deadline of each call, in milliseconds; none by default. */
  timeoutMs?: number;
  /**
   * How long a call keeps trying the service's addresses after its server
   * became unreachable, ms, as for the Client; then it throws
   * UnavailableError. Default 30000.
   */
  failoverTimeoutMs?: number;
}

interface Endpoint<S extends DescService> {
  readonly address: string;
  readonly connection: Connection;
  readonly rpc: RpcClient<S>;
}

export class FailoverCalls<S extends DescService> {
  /** The addresses, in the order given. */
  readonly addresses: readonly string[];
  /** The namespace every call acts in; undefined: the server's "default". */
  readonly namespace: string | undefined;
  private readonly endpoints: Endpoint<S>[];
  private readonly failover: Failover;
  private readonly timeoutMs: number | undefined;
  private closed = false;

  /** `owner` names the adapter in the error of a call after `close()`. */
  constructor(
    private readonly owner: string,
    service: S,
    options: FailoverCallOptions,
  ) {
    this.addresses = parseAddresses(options.address);
    const credentials = resolveCredentials(options);
    this.namespace = credentials.namespace;
    this.timeoutMs = options.timeoutMs;
    this.failover = new Failover(
      this.addresses.length,
      options.failoverTimeoutMs ?? 30_000,
      unreachableHint(credentials),
    );
    this.endpoints = this.addresses.map((address) => {
      const connection = connect(address, { credentials });
      return { address, connection, rpc: createClient(service, connection.transport) };
    });
  }

  /** A call, sent to the next address while its server is unreachable. */
  async call<T>(request: (rpc: RpcClient<S>, options: { timeoutMs?: number }) => Promise<T>): Promise<T> {
    if (this.closed) {
      throw new UnavailableError(`${this.owner}(${this.addresses.join(",")}) is closed`, { code: "UNAVAILABLE" });
    }
    const attempts = this.failover.attempts();
    for (;;) {
      const endpoint = this.endpoints[attempts.index];
      try {
        return await request(endpoint.rpc, { timeoutMs: this.timeoutMs });
      } catch (error) {
        if (connectionLoss(error) === undefined || this.closed) throw fromRpcError(error);
        await attempts.failed(unavailable(error, endpoint.address));
      }
    }
  }

  /** Closes the connections; calls after this fail. */
  close(): void {
    this.closed = true;
    for (const endpoint of this.endpoints) endpoint.connection.close();
  }
}
