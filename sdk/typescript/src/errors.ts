/**
 * Errors raised by the SDK.
 *
 *     CairnError                      any error status from the service
 *     ├── InvalidArgumentError        INVALID_ARGUMENT (bad input, AMBIGUOUS_RESUME)
 *     │   └── JsonTooDeepError        JSON_TOO_DEEP (also raised before sending)
 *     ├── NotFoundError               NOT_FOUND
 *     │   ├── ThreadNotFoundError     THREAD_NOT_FOUND
 *     │   └── RunNotFoundError        RUN_NOT_FOUND
 *     ├── AlreadyExistsError          ALREADY_EXISTS
 *     ├── FailedPreconditionError     FAILED_PRECONDITION
 *     │   └── ThreadBusyError         THREAD_BUSY
 *     ├── UnauthenticatedError        UNAUTHENTICATED (no, bad or expired token or API key)
 *     ├── PermissionDeniedError       PERMISSION_DENIED (a role too weak in the namespace)
 *     ├── ResourceExhaustedError      RESOURCE_EXHAUSTED (PAYLOAD_TOO_LARGE)
 *     ├── UnavailableError            UNAVAILABLE (also: the TLS handshake failed)
 *     └── UnimplementedError          UNIMPLEMENTED
 *     RunFailedError                  Client.invoke: the run ended FAILED
 *     TaskFailedError                 inside a workflow: a called task failed
 *     NonDeterministicError           a replay called another task than recorded
 *     InterruptTimeoutError           interrupt(value, { timeout }) got no answer in time
 *     InvalidValueError               a value JSON cannot carry
 *
 * `reason` is the google.rpc.ErrorInfo reason (e.g. "THREAD_BUSY", listed in
 * protos/cairn/v1/errors.proto) and `metadata` its offending ids. The
 * control-flow signals thrown by `interrupt()` live in context.ts.
 */

import { Code, ConnectError } from "@connectrpc/connect";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import type { Run } from "./types.js";

/** Canonical gRPC status code names, as the server's docs and ErrorInfo use them. */
const CODE_NAMES: Record<number, string> = {
  [Code.Canceled]: "CANCELLED",
  [Code.Unknown]: "UNKNOWN",
  [Code.InvalidArgument]: "INVALID_ARGUMENT",
  [Code.DeadlineExceeded]: "DEADLINE_EXCEEDED",
  [Code.NotFound]: "NOT_FOUND",
  [Code.AlreadyExists]: "ALREADY_EXISTS",
  [Code.PermissionDenied]: "PERMISSION_DENIED",
  [Code.ResourceExhausted]: "RESOURCE_EXHAUSTED",
  [Code.FailedPrecondition]: "FAILED_PRECONDITION",
  [Code.Aborted]: "ABORTED",
  [Code.OutOfRange]: "OUT_OF_RANGE",
  [Code.Unimplemented]: "UNIMPLEMENTED",
  [Code.Internal]: "INTERNAL",
  [Code.Unavailable]: "UNAVAILABLE",
  [Code.DataLoss]: "DATA_LOSS",
  [Code.Unauthenticated]: "UNAUTHENTICATED",
};

export interface CairnErrorOptions {
  code?: string;
  reason?: string;
  metadata?: Record<string, string>;
}

/** An error status from the Cairn service. */
export class CairnError extends Error {
  /** The canonical status code name, e.g. "FAILED_PRECONDITION". */
  readonly code: string;
  /** The google.rpc.ErrorInfo reason, e.g. "THREAD_BUSY"; "" when absent. */
  readonly reason: string;
  /** The offending ids, from ErrorInfo.metadata. */
  readonly metadata: Record<string, string>;

  constructor(message: string, options: CairnErrorOptions = {}) {
    super(message);
    this.name = new.target.name;
    this.code = options.code ?? "UNKNOWN";
    this.reason = options.reason ?? "";
    this.metadata = options.metadata ?? {};
  }
}

export class InvalidArgumentError extends CairnError {}
export class NotFoundError extends CairnError {}
export class ThreadNotFoundError extends NotFoundError {}
export class RunNotFoundError extends NotFoundError {}
export class AlreadyExistsError extends CairnError {}
export class FailedPreconditionError extends CairnError {}
export class ThreadBusyError extends FailedPreconditionError {}
/** The service did not accept the call's credential: none was sent (see
 * `token`, `apiKey` and CAIRN_TOKEN / CAIRN_API_KEY), or the token or API key
 * is unknown, badly signed or expired. */
export class UnauthenticatedError extends CairnError {}
/** The caller's grants in the call's namespace do not include the role the
 * call needs (e.g. a reader cancelling a run). Ids in a namespace the caller
 * has no grant in answer NotFoundError instead. */
export class PermissionDeniedError extends CairnError {}
export class ResourceExhaustedError extends CairnError {}
export class UnavailableError extends CairnError {}
export class UnimplementedError extends CairnError {}

/** `Client.invoke` on a run that ended FAILED; `run.error` has the cause. */
export class RunFailedError extends Error {
  readonly run: Run;

  constructor(run: Run) {
    super(run.error ? `${run.error.type}: ${run.error.message}` : "run failed");
    this.name = "RunFailedError";
    this.run = run;
  }
}

/**
 * Thrown inside a workflow when a task it called failed for good. `type` is
 * the name of the task's error in the task's language (`ValueError` from a
 * Python task, `TypeError` from a TypeScript one).
 */
export class TaskFailedError extends Error {
  readonly type: string;
  readonly remoteTraceback: string;

  constructor(type: string, message: string, traceback = "") {
    super(message);
    this.name = "TaskFailedError";
    this.type = type;
    this.remoteTraceback = traceback;
  }
}

/** A called task failed on a timeout the service enforces (`TaskTimeouts`):
 * `timeout` is "schedule_to_start" (no worker took it) or "start_to_close"
 * (its last attempt ran too long). */
export class TaskTimeoutError extends TaskFailedError {
  constructor(
    message: string,
    readonly timeout: string,
    readonly taskName: string,
    traceback = "",
  ) {
    super("TaskTimeoutError", message, traceback);
    this.name = "TaskTimeoutError";
  }
}

/** A replay called a different task than the one recorded at that position. */
export class NonDeterministicError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NonDeterministicError";
  }
}

/**
 * Thrown by `interrupt(value, { timeout })`, called without a `default`,
 * when no resume answered it in time and the service resumed the run
 * itself. Catch it to go on without the answer; uncaught, the task fails
 * with type "InterruptTimeoutError" (not retried: a retry would replay the
 * same timeout).
 *
 *     let approved = false;
 *     try {
 *       approved = interrupt<boolean>("approve?", { timeout: 60 * 60 * 1000 });
 *     } catch (error) {
 *       if (!(error instanceof InterruptTimeoutError)) throw error;
 *       await notifyNobodyAnswered();
 *     }
 */
export class InterruptTimeoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InterruptTimeoutError";
  }
}

/** A value that JSON cannot carry (NaN, a bigint, a Map, ...). */
export class InvalidValueError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = "InvalidValueError";
  }
}

/**
 * How deep arrays and objects may nest in a value Cairn carries (see "Limits"
 * in protos/cairn/v1/errors.proto): protobuf decoders stop at 100 message
 * levels and each JSON object level costs three.
 */
export const MAX_JSON_DEPTH = 24;

/**
 * A value nests arrays and objects deeper than MAX_JSON_DEPTH. Thrown before
 * the value is sent, with the code and reason the service would answer
 * (INVALID_ARGUMENT, JSON_TOO_DEEP); a task whose result, interrupt value,
 * stream data or call input is too deep fails without retrying.
 */
export class JsonTooDeepError extends InvalidArgumentError {
  constructor(where: string) {
    super(
      `${where} nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep;` +
        ` Cairn carries JSON values up to ${MAX_JSON_DEPTH} levels`,
      {
        code: "INVALID_ARGUMENT",
        reason: "JSON_TOO_DEEP",
        metadata: { field: where, limit: String(MAX_JSON_DEPTH) },
      },
    );
  }
}

const BY_CODE: Partial<Record<string, typeof CairnError>> = {
  INVALID_ARGUMENT: InvalidArgumentError,
  NOT_FOUND: NotFoundError,
  ALREADY_EXISTS: AlreadyExistsError,
  FAILED_PRECONDITION: FailedPreconditionError,
  UNAUTHENTICATED: UnauthenticatedError,
  PERMISSION_DENIED: PermissionDeniedError,
  RESOURCE_EXHAUSTED: ResourceExhaustedError,
  UNAVAILABLE: UnavailableError,
  UNIMPLEMENTED: UnimplementedError,
};

const BY_REASON: Partial<Record<string, typeof CairnError>> = {
  THREAD_NOT_FOUND: ThreadNotFoundError,
  RUN_NOT_FOUND: RunNotFoundError,
  THREAD_BUSY: ThreadBusyError,
};

export interface ErrorInfo {
  reason: string;
  domain: string;
  metadata: Record<string, string>;
}

const ERROR_INFO = "google.rpc.ErrorInfo";

/**
 * Reads a google.rpc.ErrorInfo (reason = 1, domain = 2, map metadata = 3).
 * Three string fields do not warrant generating googleapis' protos.
 */
export function decodeErrorInfo(bytes: Uint8Array): ErrorInfo {
  const info: ErrorInfo = { reason: "", domain: "", metadata: {} };
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) info.reason = reader.string();
    else if (field === 2 && wireType === WireType.LengthDelimited) info.domain = reader.string();
    else if (field === 3 && wireType === WireType.LengthDelimited) {
      const entry = new BinaryReader(reader.bytes());
      let key = "";
      let value = "";
      while (entry.pos < entry.len) {
        const [entryField, entryType] = entry.tag();
        if (entryField === 1) key = entry.string();
        else if (entryField === 2) value = entry.string();
        else entry.skip(entryType, entryField);
      }
      info.metadata[key] = value;
    } else reader.skip(wireType, field);
  }
  return info;
}

/** The google.rpc.ErrorInfo detail of a failed call, if it has one. */
export function errorInfo(error: ConnectError): ErrorInfo | undefined {
  for (const detail of error.details) {
    if ("type" in detail && detail.type === ERROR_INFO) return decodeErrorInfo(detail.value);
  }
  return undefined;
}

/** The `code`s of Node errors in `error`'s cause chain, outermost first. */
export function causeCodes(error: unknown): string[] {
  const codes: string[] = [];
  const seen = new Set<unknown>();
  while (error instanceof Error && !seen.has(error)) {
    seen.add(error);
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
    error = error.cause;
  }
  return codes;
}

/** Node's codes of a failed TLS handshake: OpenSSL's certificate checks
 * (SELF_SIGNED_CERT_IN_CHAIN, CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_...), a
 * name mismatch (ERR_TLS_CERT_ALTNAME_INVALID) and SSL alerts (ERR_SSL_...). */
const TLS_FAILURE = /^(ERR_TLS_|ERR_SSL_|UNABLE_TO_)|CERT/;

/** The typed CairnError for a failed call; anything else is returned as is. */
export function fromRpcError(error: unknown): unknown {
  if (!(error instanceof ConnectError)) return error;
  if (!error.metadata.has("grpc-status") && causeCodes(error).some((c) => TLS_FAILURE.test(c))) {
    // No server answered: the connection was refused at the handshake, which
    // gRPC reports as UNAVAILABLE. Sending the call again would not help.
    return new UnavailableError(`TLS handshake failed: ${error.rawMessage}`, { code: "UNAVAILABLE" });
  }
  const code = CODE_NAMES[error.code] ?? "UNKNOWN";
  const info = errorInfo(error);
  const reason = info?.reason ?? "";
  const cls = BY_REASON[reason] ?? BY_CODE[code] ?? CairnError;
  return new cls(error.rawMessage, { code, reason, metadata: info?.metadata ?? {} });
}
