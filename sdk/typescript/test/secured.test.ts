/**
 * The TypeScript SDK against a real secured `cairn serve`: TLS with a CA made
 * for the run, HS256 bearer JWTs with per-namespace grants, and a second
 * server that requires client certificates (mTLS) and maps their subject to
 * grants through an access file. A worker, a client and CairnSaver work with
 * the right grants; a missing, expired or too weak credential, another
 * namespace, a plaintext connection and a missing client certificate fail
 * with the error a user would handle.
 */

import assert from "node:assert/strict";
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { emptyCheckpoint, uuid6, type Checkpoint } from "@langchain/langgraph-checkpoint";
import {
  Client,
  NotFoundError,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
  Worker,
  entrypoint,
  task,
  type CredentialOptions,
  type TlsOptions,
} from "../src/index.js";
import { CairnSaver } from "../src/langgraph.js";
import { createAuthority } from "./certificates.js";
import { startServer, type Server } from "./server.js";

// The CAIRN_* variables would fill in options the tests leave out on purpose.
for (const name of Object.keys(process.env)) {
  if (name.startsWith("CAIRN_") && name !== "CAIRN_BIN") delete process.env[name];
}

/** How long an event the tests wait on may take before the test fails. */
const WAIT_MS = 30_000;
/** A failed connection is not retried for long: the tests expect the failure. */
const FAILOVER_MS = 1_000;

// --- certificates, secrets, tokens ---------------------------------------------------

const folder = mkdtempSync(join(tmpdir(), "cairn-secured-"));

function file(name: string, content: string): string {
  const path = join(folder, name);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
}

const authority = createAuthority("Cairn Secured Test CA");
const serverPair = authority.issue({
  commonName: "cairn-test-server",
  ipAddresses: ["127.0.0.1"],
  dnsNames: ["localhost"],
});
const clientPair = authority.issue({ commonName: "ts-worker", usage: "client" });
const strangerPair = createAuthority("Another CA").issue({ commonName: "ts-worker", usage: "client" });

const paths = {
  ca: file("ca.pem", authority.cert),
  serverCert: file("server.pem", serverPair.cert),
  serverKey: file("server.key", serverPair.key),
  clientCert: file("client.pem", clientPair.cert),
  clientKey: file("client.key", clientPair.key),
  strangerCert: file("stranger.pem", strangerPair.cert),
  strangerKey: file("stranger.key", strangerPair.key),
};

/** The server's HS256 key (CAIRN_JWT_SECRET): 48 random bytes as base64url text,
 * whose UTF-8 bytes are the key. */
const SECRET = randomBytes(48).toString("base64url");

const base64url = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");

/** An HS256 JWT for `sub` with these grants, valid for an hour (or expired). */
function mint(permissions: string[], { sub = "ts-test", expired = false } = {}): string {
  const now = Math.floor(Date.now() / 1000);
  const header = base64url({ alg: "HS256", typ: "JWT" });
  const payload = base64url({ sub, iat: now, exp: expired ? now - 600 : now + 3600, permissions });
  const signature = createHmac("sha256", SECRET).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${signature}`;
}

const TLS: TlsOptions = { caFile: paths.ca };

// --- functions -----------------------------------------------------------------------

const shout = task("shout", async (text: string) => text.toUpperCase());

const greet = entrypoint({ name: "greet" }, async (name: string) => ({
  greeting: `hello ${await shout(name)}`,
}));

// --- helpers -------------------------------------------------------------------------

/** `promise`, or a failure naming `what` once WAIT_MS have passed. */
async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${WAIT_MS} ms`)), WAIT_MS);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A worker serving `greet` and `shout`, connected; `stop()` disconnects it. */
async function startWorker(
  address: string,
  options: CredentialOptions,
): Promise<{ worker: Worker; stop(): Promise<void> }> {
  const logs: string[] = [];
  const worker = new Worker({ address, functions: [greet, shout], log: (m) => logs.push(m), ...options });
  const running = worker.run();
  const stop = async () => {
    await worker.stop({ graceMs: 1000 });
    await running;
  };
  try {
    await within(worker.waitConnected(), `the worker connecting to ${address}`);
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}; the worker logged: ${logs.join("; ")}`, { cause: error });
  }
  return { worker, stop };
}

const clients: { close(): void }[] = [];

/** A client of `address` (closed after the tests) that gives up quickly on a
 * connection that fails. */
function client(address: string, options: CredentialOptions): Client {
  const made = new Client({ address, failoverTimeoutMs: FAILOVER_MS, ...options });
  clients.push(made);
  return made;
}

function saver(address: string, options: CredentialOptions): CairnSaver {
  const made = new CairnSaver({ address, failoverTimeoutMs: FAILOVER_MS, ...options });
  clients.push(made);
  return made;
}

function checkpoint(values: Record<string, unknown>): Checkpoint {
  const versions = Object.fromEntries(Object.keys(values).map((key) => [key, 1]));
  return { ...emptyCheckpoint(), id: uuid6(0), channel_values: values, channel_versions: versions };
}

/** What `promise` rejected with (it must reject). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (value) => assert.fail(`expected a failure, got ${JSON.stringify(value)}`),
    (error: unknown) => error,
  );
}

// --- the servers: TLS with JWTs, and mTLS --------------------------------------------

let server: Server;
let mtls: Server;

before(async () => {
  server = await startServer({
    args: ["--tls-cert", paths.serverCert, "--tls-key", paths.serverKey],
    env: { CAIRN_JWT_SECRET: SECRET },
  });
  const access = file(
    "access.json",
    JSON.stringify({ certificates: [{ subject: "CN=ts-worker", grants: ["default:admin"] }] }),
  );
  try {
    mtls = await startServer({
      args: [
        "--tls-cert",
        paths.serverCert,
        "--tls-key",
        paths.serverKey,
        "--tls-client-ca",
        paths.ca,
        "--access-file",
        access,
      ],
    });
  } catch (error) {
    await server.stop();
    throw error;
  }
});

after(async () => {
  for (const made of clients) made.close();
  await server?.stop();
  await mtls?.stop();
  rmSync(folder, { recursive: true, force: true });
});

describe("TLS and bearer JWTs with namespaces", () => {
  const writer = { tls: TLS, token: mint(["team-a:writer"]), namespace: "team-a" };
  let threadId: string;
  let served: Awaited<ReturnType<typeof startWorker>>;

  before(async () => {
    served = await startWorker(server.address, { tls: TLS, token: mint(["team-a:worker"]), namespace: "team-a" });
  });
  after(async () => served?.stop());

  test("a worker and a client of team-a run an entrypoint with its task", async () => {
    threadId = `greet-${randomUUID()}`;
    const run = await client(server.address, writer).invoke(greet, "ada", { threadId });
    assert.equal(run.state, "succeeded");
    assert.deepEqual(run.output, { greeting: "hello ADA" });
    const state = await client(server.address, writer).getState(threadId);
    assert.deepEqual(state.values, { greeting: "hello ADA" });
    assert.deepEqual(state.next, []);
    // The worker serves team-a only: the service lists it there.
    const workers = await client(server.address, writer).listWorkers();
    assert.ok(workers.some((w) => w.entrypoints.includes("greet") && w.tasks.includes("shout")));
  });

  test("without a token, or with an expired one, calls are unauthenticated", async () => {
    const { token: _, ...anonymous } = writer;
    const none = await rejection(
      client(server.address, anonymous).invoke(greet, "bob", { threadId: `anonymous-${randomUUID()}` }),
    );
    assert.ok(none instanceof UnauthenticatedError, String(none));
    assert.equal(none.reason, "UNAUTHENTICATED");
    const expired = { ...writer, token: mint(["team-a:writer"], { expired: true }) };
    const late = await rejection(client(server.address, expired).getThread(threadId));
    assert.ok(late instanceof UnauthenticatedError, String(late));
    const forged = { ...writer, token: `${mint(["team-a:writer"]).slice(0, -4)}AAAA` };
    const bad = await rejection(client(server.address, forged).getThread(threadId));
    assert.ok(bad instanceof UnauthenticatedError, String(bad));
  });

  test("a team-a reader reads the thread but may not start a run", async () => {
    const reader = client(server.address, { ...writer, token: mint(["team-a:reader"]) });
    assert.equal((await reader.getThread(threadId)).threadId, threadId);
    assert.deepEqual((await reader.getState(threadId)).values, { greeting: "hello ADA" });
    const denied = await rejection(reader.invoke(greet, "eve", { threadId: `reader-${randomUUID()}` }));
    assert.ok(denied instanceof PermissionDeniedError, String(denied));
    assert.equal(denied.reason, "PERMISSION_DENIED");
  });

  test("team-b does not see team-a's thread", async () => {
    const teamB = mint(["team-b:writer"]);
    const inB = client(server.address, { tls: TLS, token: teamB, namespace: "team-b" });
    const missing = await rejection(inB.getThread(threadId));
    assert.ok(missing instanceof NotFoundError, String(missing));
    // Asking in team-a itself, where it has no grant, does not tell it the thread exists either.
    const inA = await rejection(
      client(server.address, { tls: TLS, token: teamB, namespace: "team-a" }).getThread(threadId),
    );
    assert.ok(inA instanceof NotFoundError, String(inA));
  });

  test("a worker with a reader token is refused", async () => {
    let refused: (message: string) => void = () => undefined;
    const logged = new Promise<string>((resolve) => (refused = resolve));
    const worker = new Worker({
      address: server.address,
      functions: [greet, shout],
      tls: TLS,
      token: mint(["team-a:reader"]),
      namespace: "team-a",
      log: (message) => refused(message),
    });
    const running = worker.run();
    try {
      const message = await within(logged, "the refused worker's log");
      assert.match(message, /permission_denied/i);
      assert.equal(worker.connected, false);
    } finally {
      await worker.stop({ graceMs: 0 });
      await running;
    }
  });

  test("a plaintext client, or one that does not trust the CA, cannot connect", async () => {
    const { tls: _, ...plaintext } = writer;
    const clear = await rejection(client(server.address, plaintext).getThread(threadId));
    assert.ok(clear instanceof UnavailableError, String(clear));
    const untrusting = await rejection(client(server.address, { ...writer, tls: true }).getThread(threadId));
    assert.ok(untrusting instanceof UnavailableError, String(untrusting));
    assert.match(untrusting.message, /TLS/);
  });

  test("CairnSaver: a writer puts and gets a checkpoint, a reader may not put", async () => {
    const config = { configurable: { thread_id: `saver-${randomUUID()}`, checkpoint_ns: "" } };
    const cp = checkpoint({ topic: "cats" });
    const metadata = { source: "input" as const, step: -1, parents: {} };
    const stored = await saver(server.address, writer).put(config, cp, metadata, { topic: 1 });
    assert.equal(stored.configurable?.checkpoint_id, cp.id);

    const readerOptions = { ...writer, token: mint(["team-a:reader"]) };
    const tuple = await saver(server.address, readerOptions).getTuple(stored);
    assert.equal(tuple?.checkpoint.id, cp.id);
    assert.deepEqual(tuple?.checkpoint.channel_values, { topic: "cats" });

    const denied = await rejection(
      saver(server.address, readerOptions).put(config, checkpoint({ topic: "dogs" }), metadata, { topic: 2 }),
    );
    assert.ok(denied instanceof PermissionDeniedError, String(denied));

    // The same thread id in team-b, by a writer of both namespaces, is another thread.
    const both = { tls: TLS, token: mint(["team-a:writer", "team-b:writer"]), namespace: "team-b" };
    assert.equal(await saver(server.address, both).getTuple(config), undefined);
  });
});

describe("mTLS: the client certificate names the caller", () => {
  const withCertificate: TlsOptions = { caFile: paths.ca, certFile: paths.clientCert, keyFile: paths.clientKey };

  test("a worker and a client with the certificate run an entrypoint, with no token", async () => {
    const served = await startWorker(mtls.address, { tls: withCertificate });
    try {
      const threadId = `mtls-${randomUUID()}`;
      const run = await client(mtls.address, { tls: withCertificate }).invoke(greet, "mo", { threadId });
      assert.deepEqual(run.output, { greeting: "hello MO" });
      assert.equal((await client(mtls.address, { tls: withCertificate }).getThread(threadId)).threadId, threadId);
    } finally {
      await served.stop();
    }
  });

  test("without a certificate, or with one another CA signed, the connection fails", async () => {
    const without = await rejection(client(mtls.address, { tls: TLS }).listThreads());
    assert.ok(without instanceof UnavailableError, String(without));
    // The server closes the connection without saying why: a client with no
    // certificate is told what may be missing, one with a certificate is not.
    assert.match(without.message, /requires client certificates/);
    const stranger = { caFile: paths.ca, certFile: paths.strangerCert, keyFile: paths.strangerKey };
    const foreign = await rejection(client(mtls.address, { tls: stranger }).listThreads());
    assert.ok(foreign instanceof UnavailableError, String(foreign));
    assert.doesNotMatch(foreign.message, /requires client certificates/);
  });
});
