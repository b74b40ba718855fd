/**
 * Several addresses of one service (replicas), and what a call does when the
 * server it talks to becomes unreachable: it moves on to the next address,
 * round robin, waits a little after each full round, and gives up once every
 * address has failed and `failoverTimeoutMs` has passed since its first
 * failure.
 *
 *     const addresses = parseAddresses("10.0.0.1:50051,10.0.0.2:50051");
 *     const failover = new Failover(addresses.length, 30_000);
 *     const attempts = failover.attempts();
 *     for (;;) {
 *       try {
 *         return await call(addresses[attempts.index]);
 *       } catch (error) {
 *         if (connectionLoss(error) === undefined) throw error;
 *         await attempts.failed(error); // throws once the budget is spent
 *       }
 *     }
 */

import { Code, ConnectError } from "@connectrpc/connect";
import { UnavailableError, causeCodes, errorInfo, fromRpcError } from "./errors.js";

export const DEFAULT_ADDRESS = "127.0.0.1:50051";

/** An address option: one host:port, a comma-separated list, or an array. */
export type Addresses = string | readonly string[];

/** The distinct host:port addresses of an address option, in the order given. */
export function parseAddresses(address: Addresses | undefined): string[] {
  const given = address === undefined ? [DEFAULT_ADDRESS] : typeof address === "string" ? [address] : address;
  const addresses = new Set<string>();
  for (const item of given) {
    if (typeof item !== "string") throw new TypeError(`a server address is a string, not ${String(item)}`);
    for (const part of item.split(",")) if (part.trim()) addresses.add(part.trim());
  }
  if (addresses.size === 0) throw new RangeError(`no server address in ${JSON.stringify(address)}`);
  return [...addresses];
}

/**
 * How a failed call lost its server:
 * - "refused": the request did not run (the connection was refused, or the
 *   server said it is shutting down), so any call may be sent again;
 * - "lost": the connection broke during the call, which may have run, so only
 *   a call that is safe to repeat is sent again.
 */
export type Loss = "refused" | "lost";

/** Errors of opening a connection: no request went out. */
const REFUSED_CAUSES = new Set(["ECONNREFUSED", "ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH"]);

/**
 * Whether `error` means the call's server is unreachable, and how (see
 * `Loss`); undefined for any other failure, a status the server chose.
 *
 * Node's HTTP/2 client reports a connection that drops during a call (the
 * server was killed, the network broke) as a stream reset, CANCELLED or
 * ABORTED without a grpc-status, rather than UNAVAILABLE; those count as
 * "lost" too. The SDK never cancels a call it still waits on.
 */
export function connectionLoss(error: unknown): Loss | undefined {
  if (!(error instanceof ConnectError)) return undefined;
  if (error.metadata.has("grpc-status")) {
    if (error.code !== Code.Unavailable) return undefined;
    return errorInfo(error)?.reason === "SHUTTING_DOWN" ? "refused" : "lost";
  }
  const codes = causeCodes(error);
  switch (error.code) {
    case Code.Unavailable:
      return codes.some((c) => REFUSED_CAUSES.has(c)) || error.message.includes("REFUSED_STREAM")
        ? "refused"
        : "lost";
    case Code.Canceled:
    case Code.Aborted:
      return "lost";
    case Code.Internal:
      // A socket or HTTP/2 session error (EPIPE, ERR_HTTP2_...), not a status.
      return codes.some((c) => /^E[A-Z]+$/.test(c) || c.startsWith("ERR_HTTP2")) ? "lost" : undefined;
    default:
      return undefined;
  }
}

/** The UnavailableError a call throws when its server is gone. */
export function unavailable(error: unknown, address: string): Error {
  const converted = fromRpcError(error);
  if (converted instanceof UnavailableError) return converted;
  const message = error instanceof ConnectError ? error.rawMessage : String(error);
  return new UnavailableError(`lost the connection to ${address}: ${message}`, { code: "UNAVAILABLE" });
}

const FIRST_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 1_000;
/** A stream that was open this long before it broke had reached its server. */
export const ESTABLISHED_MS = 1_000;

/** The address that calls start with, shared by every call of one client. */
export class Failover {
  private preferred = 0;

  constructor(
    readonly size: number,
    readonly timeoutMs: number,
    /** Added to the error a call throws once its budget is spent (unreachableHint). */
    readonly hint = "",
  ) {}

  /** The index of the address a new call goes to first: the last one that worked. */
  get current(): number {
    return this.preferred;
  }

  /** The attempts of one call (or one stream, across its reconnections). */
  attempts(): Attempts {
    return new Attempts(this);
  }

  /** `index` failed: calls move on to the next address (once, however many
   * calls saw it fail). Returns where calls go now. */
  moveOn(index: number): number {
    if (this.preferred === index) this.preferred = (index + 1) % this.size;
    return this.preferred;
  }
}

/** One call's way through the addresses. */
export class Attempts {
  /** The index of the address to use now. */
  index: number;
  private failures = 0;
  private deadline: number | undefined;

  constructor(private readonly failover: Failover) {
    this.index = failover.current;
  }

  /** The server answered (or a stream to it was open a while): a later
   * failure starts a new budget. */
  succeeded(): void {
    this.failures = 0;
    this.deadline = undefined;
  }

  /**
   * The server at `index` is unreachable (`error`, an UnavailableError):
   * moves on to the next address, after a short wait when a whole round of
   * addresses has failed. Throws `error` once every address has failed and
   * the budget is spent.
   */
  async failed(error: Error): Promise<void> {
    const { size, timeoutMs } = this.failover;
    this.failures += 1;
    this.deadline ??= Date.now() + timeoutMs;
    const left = this.deadline - Date.now();
    if (this.failures >= size && left <= 0) {
      if (this.failover.hint) error.message += this.failover.hint;
      throw error;
    }
    this.index = this.failover.moveOn(this.index);
    if (this.failures % size !== 0) return;
    const round = this.failures / size;
    const backoff = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (round - 1));
    const wait = Math.min(left, backoff * (0.5 + Math.random() / 2));
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
}
