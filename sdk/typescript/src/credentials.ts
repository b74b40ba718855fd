/**
 * Who a client is, in which namespace it acts, and how its connection is
 * secured: the options that Client, Worker and CairnSaver share.
 *
 *     const client = new Client({
 *       address: "cairn.internal:50051",
 *       apiKey: process.env.MY_CAIRN_KEY,     // or token: "<a JWT>"
 *       namespace: "team-a",
 *       tls: { caFile: "/etc/cairn/ca.pem" },  // mTLS: add certFile and keyFile
 *     });
 *
 * A setting left out of the options is read from the environment:
 *
 *     CAIRN_TOKEN, CAIRN_API_KEY     the credential (at most one of them)
 *     CAIRN_NAMESPACE                the namespace; the server's "default" when unset
 *     CAIRN_TLS                      1/true: TLS, verified against the system's roots
 *     CAIRN_TLS_CA                   a CA bundle (PEM file) to verify the server; implies TLS
 *     CAIRN_TLS_CERT, CAIRN_TLS_KEY  a client certificate and its key (mTLS); imply TLS
 *     CAIRN_TLS_SERVER_NAME          the name the server's certificate is checked against
 *
 * An option given wins over its variable: an `apiKey` replaces CAIRN_TOKEN as
 * well as CAIRN_API_KEY, `tls: false` means plaintext whatever CAIRN_TLS* say,
 * and `tls: { caFile }` still takes a client certificate from CAIRN_TLS_CERT
 * and CAIRN_TLS_KEY. Files are read once, when the client is constructed,
 * and a mistake (a token and an API key, a certificate without its key, a
 * file that is missing or not PEM, an invalid namespace) throws there. As in
 * the Python SDK, a credential sent in plaintext to an address that is not
 * this machine's emits a warning once.
 *
 * On the wire every call, unary or streaming, carries `authorization: Bearer
 * <token or API key>` and `cairn-namespace: <namespace>` metadata, added by one
 * interceptor on the connection (`credentialsInterceptor`).
 */

import { readFileSync } from "node:fs";
import type { SecureClientSessionOptions } from "node:http2";
import type { Interceptor } from "@connectrpc/connect";

/** TLS settings: the CA to verify the server with (default: the system's
 * roots), and a client certificate for mTLS. Give a file or its PEM content,
 * not both. A setting left out is read from its CAIRN_TLS_* variable. */
export interface TlsOptions {
  /** Path of a PEM CA bundle that signed the server's certificate (CAIRN_TLS_CA). */
  caFile?: string;
  /** Path of the PEM client certificate (mTLS); needs a key (CAIRN_TLS_CERT). */
  certFile?: string;
  /** Path of the PEM private key of the client certificate (CAIRN_TLS_KEY). */
  keyFile?: string;
  /** PEM CA bundle, in place of `caFile`. */
  ca?: Buffer | string;
  /** PEM client certificate, in place of `certFile`. */
  cert?: Buffer | string;
  /** PEM private key, in place of `keyFile`. */
  key?: Buffer | string;
  /** The host name the server's certificate must name, when it is not the
   * address's host, as gRPC's `grpc.ssl_target_name_override`
   * (CAIRN_TLS_SERVER_NAME). */
  serverName?: string;
}

/** Identity, namespace and TLS options, shared by ClientOptions, WorkerOptions
 * and CairnSaverOptions (see the module comment for the environment variables
 * used when they are left out). */
export interface CredentialOptions {
  /** A JWT sent as `authorization: Bearer <token>`. Not with `apiKey`. */
  token?: string;
  /** An API key (`cairn_...`) sent as `authorization: Bearer <key>`. Not with `token`. */
  apiKey?: string;
  /** The namespace every call acts in; the server uses "default" when unset. */
  namespace?: string;
  /** true: TLS, verified against the system's roots unless CAIRN_TLS_CA names
   * a CA; an object: TLS with these settings (the ones it leaves out read from
   * CAIRN_TLS_*); false: plaintext, whatever the environment says. */
  tls?: boolean | TlsOptions;
}

/** The TLS material of a connection, read from files or given as PEM. */
export interface ResolvedTls {
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly serverName?: string;
}

/** Credential options resolved against the environment, files read. */
export interface Credentials {
  /** The bearer credential (a JWT or an API key); undefined sends none. */
  readonly bearer?: string;
  readonly namespace?: string;
  /** undefined for a plaintext connection. */
  readonly tls?: ResolvedTls;
}

/**
 * What to add to "cannot reach the server" for a TLS client without a
 * certificate: a server that requires client certificates (mutual TLS)
 * closes such a connection right after the handshake, with no alert saying
 * why, so the client sees only a closed stream.
 */
export function unreachableHint(credentials: Credentials): string {
  if (credentials.tls === undefined || credentials.tls.cert !== undefined) return "";
  return (
    "; if the server requires client certificates (mutual TLS), give one:" +
    " tls: { certFile, keyFile } or CAIRN_TLS_CERT and CAIRN_TLS_KEY"
  );
}

export const AUTHORIZATION_HEADER = "authorization";
export const NAMESPACE_HEADER = "cairn-namespace";

/** A namespace name as the service accepts it (see INVALID_NAMESPACE in errors.proto). */
const NAMESPACE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

type Environment = Readonly<Record<string, string | undefined>>;

/** An environment variable, or undefined when it is unset or empty. */
function fromEnv(env: Environment, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

function given(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

/** What a gRPC metadata value may carry (visible ASCII): a pasted credential
 * with a newline fails at construction rather than on every call. */
const CREDENTIAL = /^[\x21-\x7e]+$/;

function bearerOf(options: CredentialOptions, env: Environment): string | undefined {
  let found: [string, string][] = [
    ["token", given(options.token)],
    ["apiKey", given(options.apiKey)],
  ].filter((entry): entry is [string, string] => entry[1] !== undefined);
  if (found.length === 0) {
    found = [
      ["CAIRN_TOKEN", fromEnv(env, "CAIRN_TOKEN")],
      ["CAIRN_API_KEY", fromEnv(env, "CAIRN_API_KEY")],
    ].filter((entry): entry is [string, string] => entry[1] !== undefined);
  }
  if (found.length > 1) {
    throw new Error(`give a token or an API key, not both (${found[0][0]} and ${found[1][0]} are set)`);
  }
  if (found.length === 0) return undefined;
  const [source, value] = found[0];
  const bearer = value.trim();
  if (!CREDENTIAL.test(bearer)) {
    throw new Error(`${source} holds characters a credential cannot have (spaces, non-ASCII)`);
  }
  return bearer;
}

function namespaceOf(options: CredentialOptions, env: Environment): string | undefined {
  const option = given(options.namespace);
  const namespace = option ?? fromEnv(env, "CAIRN_NAMESPACE");
  if (namespace !== undefined && !NAMESPACE.test(namespace)) {
    throw new RangeError(
      `${option === undefined ? "CAIRN_NAMESPACE" : "namespace"}: ${JSON.stringify(namespace)} is not a ` +
        "namespace name (1 to 63 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or a digit)",
    );
  }
  return namespace;
}

const PEM_KINDS = {
  CA: { variable: "CAIRN_TLS_CA", marker: "-----BEGIN CERTIFICATE-----" },
  certificate: { variable: "CAIRN_TLS_CERT", marker: "-----BEGIN CERTIFICATE-----" },
  key: { variable: "CAIRN_TLS_KEY", marker: "PRIVATE KEY-----" },
} as const;

/**
 * One PEM setting: given inline or as a file in the options (not both), else
 * the file its CAIRN_TLS_* variable names; files are read now.
 */
function pem(
  kind: keyof typeof PEM_KINDS,
  inline: Buffer | string | undefined,
  file: string | undefined,
  env: Environment,
): Buffer | undefined {
  const { variable, marker } = PEM_KINDS[kind];
  if (inline !== undefined && file !== undefined) {
    throw new Error(`give the TLS ${kind} or its file, not both`);
  }
  let data: Buffer;
  let source = "tls";
  if (inline !== undefined) {
    data = Buffer.isBuffer(inline) ? inline : Buffer.from(inline);
  } else {
    const path = file ?? fromEnv(env, variable);
    if (path === undefined) return undefined;
    source = file === undefined ? `${path} (${variable})` : path;
    try {
      data = readFileSync(path);
    } catch (error) {
      throw new Error(`cannot read the TLS ${kind} file ${source}: ${(error as Error).message}`, { cause: error });
    }
  }
  if (!data.includes(marker)) throw new Error(`the TLS ${kind} from ${source} is not PEM (no "${marker}")`);
  return data;
}

/** Whether the environment asks for TLS when the options do not say. */
function tlsFromEnv(env: Environment): boolean {
  const flag = fromEnv(env, "CAIRN_TLS");
  const files = Object.values(PEM_KINDS)
    .map(({ variable }) => variable)
    .filter((variable) => fromEnv(env, variable) !== undefined);
  if (flag === undefined) return files.length > 0;
  if (/^(1|true|yes|on)$/i.test(flag)) return true;
  if (!/^(0|false|no|off)$/i.test(flag)) {
    throw new Error(`CAIRN_TLS must be 1/true or 0/false, not ${JSON.stringify(flag)}`);
  }
  if (files.length > 0) {
    // Falling back to plaintext would send the credential in clear.
    throw new Error(`CAIRN_TLS is off but ${files.join(", ")} (which imply TLS) is set`);
  }
  return false;
}

function tlsOf(options: CredentialOptions, env: Environment): ResolvedTls | undefined {
  const { tls } = options;
  if (tls === false || (tls === undefined && !tlsFromEnv(env))) return undefined;
  const settings: TlsOptions = tls === undefined || tls === true ? {} : tls;
  if (typeof settings !== "object" || settings === null) {
    throw new TypeError(`tls is a boolean or an object, not ${String(settings)}`);
  }
  const ca = pem("CA", settings.ca, given(settings.caFile), env);
  const cert = pem("certificate", settings.cert, given(settings.certFile), env);
  const key = pem("key", settings.key, given(settings.keyFile), env);
  if ((cert === undefined) !== (key === undefined)) {
    throw new Error(
      "a TLS client certificate needs its key, and a key its certificate (mTLS): give both " +
        "(certFile and keyFile, or CAIRN_TLS_CERT and CAIRN_TLS_KEY)",
    );
  }
  const serverName = given(settings.serverName) ?? fromEnv(env, "CAIRN_TLS_SERVER_NAME");
  return { ca, cert, key, serverName };
}

/**
 * The credentials of `options`, with the CAIRN_* variables of `env` for the
 * settings they leave out (see the module comment). Throws when a token and an
 * API key are both given, when a client certificate lacks its key (or a key
 * its certificate), for an invalid namespace, and when a file cannot be read
 * or is not PEM.
 */
export function resolveCredentials(
  options: CredentialOptions = {},
  env: Environment = process.env,
): Credentials {
  return { bearer: bearerOf(options, env), namespace: namespaceOf(options, env), tls: tlsOf(options, env) };
}

/** The metadata every call carries for `credentials`. */
export function credentialHeaders(credentials: Credentials): Record<string, string> {
  const headers: Record<string, string> = {};
  if (credentials.bearer !== undefined) headers[AUTHORIZATION_HEADER] = `Bearer ${credentials.bearer}`;
  if (credentials.namespace !== undefined) headers[NAMESPACE_HEADER] = credentials.namespace;
  return headers;
}

/**
 * Adds the credential and namespace metadata to every call of a transport,
 * unary and streaming alike. A header a call sets itself is kept. (Metadata
 * rather than call credentials, so that it works on plaintext connections
 * too, as the server's loopback and --insecure modes allow.)
 */
export function credentialsInterceptor(credentials: Credentials): Interceptor {
  const headers = Object.entries(credentialHeaders(credentials));
  return (next) => (request) => {
    for (const [name, value] of headers) {
      if (!request.header.has(name)) request.header.set(name, value);
    }
    return next(request);
  };
}

/** Node's HTTP/2 TLS options for `tls`. */
export function tlsSessionOptions(tls: ResolvedTls): SecureClientSessionOptions {
  const options: SecureClientSessionOptions = {};
  if (tls.ca !== undefined) options.ca = tls.ca;
  if (tls.cert !== undefined) options.cert = tls.cert;
  if (tls.key !== undefined) options.key = tls.key;
  // Node checks the certificate against the servername when given (and sends
  // it as SNI), as gRPC's ssl_target_name_override.
  if (tls.serverName !== undefined) options.servername = tls.serverName;
  return options;
}

/** Whether `address` (host:port or a URL) is this machine. */
export function isLoopback(address: string): boolean {
  let host: string;
  try {
    host = new URL(/^[a-z]+:\/\//i.test(address) ? address : `http://${address}`).hostname;
  } catch {
    return false;
  }
  host = host.replace(/^\[|\]$/g, "");
  return (
    host === "localhost" || host.endsWith(".localhost") || /^127\./.test(host) || host === "::1"
  );
}

const warned = new WeakSet<Credentials>();

/** Warns once per `credentials` when they send a credential in plaintext
 * to another machine. */
export function warnIfPlaintext(credentials: Credentials, address: string): void {
  if (credentials.bearer === undefined || credentials.tls !== undefined || /^https:/i.test(address)) return;
  if (warned.has(credentials) || isLoopback(address)) return;
  warned.add(credentials);
  process.emitWarning(
    `sending a credential to ${address} without TLS: anyone on the network path can read it; ` +
      "pass tls (or set CAIRN_TLS / CAIRN_TLS_CA)",
    { code: "CAIRN_PLAINTEXT_CREDENTIAL" },
  );
}
