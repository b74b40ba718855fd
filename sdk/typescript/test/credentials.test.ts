/**
 * Credentials, namespace and TLS of every client surface (Client, Worker,
 * CairnSaver): what reaches the server on unary and streaming calls, the
 * CAIRN_* environment variables, TLS and mTLS with certificates made for the
 * run, and the errors of a refused call. The servers are in-process gRPC
 * servers on 127.0.0.1 (test/recording.ts).
 */

import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, test } from "node:test";
import {
  CairnError,
  Client,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
  Worker,
  type CredentialOptions,
} from "../src/index.js";
import { CairnSaver } from "../src/langgraph.js";
import { createAuthority, type Authority } from "./certificates.js";
import { startRecordingServer, type Call, type RecordingServer } from "./recording.js";

const TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
const API_KEY = "cairn_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";

const CAIRN_VARIABLES = [
  "CAIRN_TOKEN",
  "CAIRN_API_KEY",
  "CAIRN_NAMESPACE",
  "CAIRN_TLS",
  "CAIRN_TLS_CA",
  "CAIRN_TLS_CERT",
  "CAIRN_TLS_KEY",
  "CAIRN_TLS_SERVER_NAME",
];

/** Sets CAIRN_* variables for one test; `restoreEnvironment` puts the old ones back. */
const saved = new Map(CAIRN_VARIABLES.map((name) => [name, process.env[name]]));
function setEnvironment(values: Record<string, string>): void {
  for (const [name, value] of Object.entries(values)) process.env[name] = value;
}
function restoreEnvironment(): void {
  for (const [name, value] of saved) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
}

// The tests start from an environment without CAIRN_* variables.
for (const name of CAIRN_VARIABLES) delete process.env[name];

function credentialsOf(call: Call): { authorization: string | null; namespace: string | null } {
  return { authorization: call.authorization, namespace: call.namespace };
}

/** A unary call, a server stream and a bidirectional stream of a Client. */
async function clientCalls(client: Client): Promise<void> {
  await client.getThread("t1");
  await client.listWorkers();
  for await (const _ of client.join("run-1")) assert.fail("the run has no events");
  for await (const _ of client.session("workflow", "input", { threadId: "t1" })) assert.fail("no events");
}

/** Connects a worker, waits for the server to welcome it, and stops it. */
async function connectWorker(server: RecordingServer, options: CredentialOptions): Promise<Call> {
  const worker = new Worker({ address: server.address, log: () => undefined, ...options });
  const running = worker.run();
  try {
    await worker.waitConnected();
    return await server.called("Connect");
  } finally {
    await worker.stop({ graceMs: 0 });
    await running;
  }
}

describe("every call carries the credential and the namespace", () => {
  let server: RecordingServer;
  before(async () => (server = await startRecordingServer()));
  after(() => server.close());
  afterEach(() => server.calls.splice(0));

  test("Client: unary, server-streaming and bidirectional calls", async () => {
    const client = new Client({ address: server.address, token: TOKEN, namespace: "team-a" });
    try {
      await clientCalls(client);
    } finally {
      client.close();
    }
    assert.deepEqual(
      server.calls.map((call) => call.method),
      ["GetThread", "ListWorkers", "JoinRun", "Session"],
    );
    for (const call of server.calls) {
      const expected = { authorization: `Bearer ${TOKEN}`, namespace: "team-a" };
      assert.deepEqual(credentialsOf(call), expected, call.method);
    }
  });

  test("Client: an API key is sent as the bearer credential", async () => {
    const client = new Client({ address: server.address, apiKey: API_KEY });
    try {
      await client.getThread("t1");
    } finally {
      client.close();
    }
    assert.deepEqual(credentialsOf(server.calls[0]), { authorization: `Bearer ${API_KEY}`, namespace: null });
  });

  test("Worker: the Connect stream", async () => {
    const call = await connectWorker(server, { apiKey: API_KEY, namespace: "team-b" });
    assert.deepEqual(credentialsOf(call), { authorization: `Bearer ${API_KEY}`, namespace: "team-b" });
  });

  test("CairnSaver: checkpoint calls", async () => {
    const saver = new CairnSaver({ address: server.address, token: TOKEN, namespace: "team-c" });
    try {
      assert.equal(await saver.getTuple({ configurable: { thread_id: "t1" } }), undefined);
    } finally {
      saver.close();
    }
    assert.deepEqual(credentialsOf(await server.called("GetTuple")), {
      authorization: `Bearer ${TOKEN}`,
      namespace: "team-c",
    });
  });

  test("nothing is sent when nothing is given", async () => {
    const client = new Client({ address: server.address });
    try {
      await clientCalls(client);
    } finally {
      client.close();
    }
    for (const call of server.calls) {
      assert.deepEqual(credentialsOf(call), { authorization: null, namespace: null }, call.method);
    }
  });
});

describe("the CAIRN_* environment variables", () => {
  let server: RecordingServer;
  before(async () => (server = await startRecordingServer()));
  after(() => server.close());
  afterEach(() => {
    restoreEnvironment();
    server.calls.splice(0);
  });

  test("are used when the options leave the settings out", async () => {
    setEnvironment({ CAIRN_TOKEN: TOKEN, CAIRN_NAMESPACE: "from-env" });
    const expected = { authorization: `Bearer ${TOKEN}`, namespace: "from-env" };

    const client = new Client({ address: server.address });
    try {
      await clientCalls(client);
    } finally {
      client.close();
    }
    for (const call of server.calls) assert.deepEqual(credentialsOf(call), expected, call.method);

    assert.deepEqual(credentialsOf(await connectWorker(server, {})), expected);

    const saver = new CairnSaver({ address: server.address });
    try {
      await saver.getTuple({ configurable: { thread_id: "t1" } });
    } finally {
      saver.close();
    }
    assert.deepEqual(credentialsOf(await server.called("GetTuple")), expected);
  });

  test("CAIRN_API_KEY is a bearer credential too", async () => {
    setEnvironment({ CAIRN_API_KEY: API_KEY });
    const client = new Client({ address: server.address });
    try {
      await client.getThread("t1");
    } finally {
      client.close();
    }
    assert.deepEqual(credentialsOf(server.calls[0]), { authorization: `Bearer ${API_KEY}`, namespace: null });
  });

  test("options override them", async () => {
    setEnvironment({ CAIRN_TOKEN: TOKEN, CAIRN_NAMESPACE: "from-env" });
    const client = new Client({ address: server.address, apiKey: API_KEY, namespace: "from-options" });
    assert.equal(client.namespace, "from-options");
    try {
      await client.getThread("t1");
    } finally {
      client.close();
    }
    const call = await connectWorker(server, { token: "worker-token", namespace: "worker-ns" });
    assert.deepEqual(credentialsOf(server.calls[0]), {
      authorization: `Bearer ${API_KEY}`,
      namespace: "from-options",
    });
    assert.deepEqual(credentialsOf(call), { authorization: "Bearer worker-token", namespace: "worker-ns" });
  });

  test("a token and an API key together are refused", () => {
    setEnvironment({ CAIRN_TOKEN: TOKEN, CAIRN_API_KEY: API_KEY });
    assert.throws(() => new Client({ address: server.address }), /CAIRN_TOKEN and CAIRN_API_KEY/);
  });

  test("tls: false keeps a plaintext connection whatever CAIRN_TLS* say", async () => {
    setEnvironment({ CAIRN_TLS: "true", CAIRN_TLS_CA: "/no/such/ca.pem" });
    const client = new Client({ address: server.address, tls: false });
    try {
      assert.equal((await client.getThread("t1")).threadId, "t1");
    } finally {
      client.close();
    }
  });
});

describe("options are checked at construction", () => {
  afterEach(restoreEnvironment);

  test("a token and an API key together", () => {
    const both = { token: TOKEN, apiKey: API_KEY };
    assert.throws(() => new Client(both), /token or an API key, not both/);
    assert.throws(() => new Worker(both), /token or an API key, not both/);
    assert.throws(() => new CairnSaver(both), /token or an API key, not both/);
  });

  test("a client certificate without its key, or a key without its certificate", () => {
    const authority = createAuthority();
    const { cert, key } = authority.issue({ commonName: "worker-1", usage: "client" });
    assert.throws(() => new Client({ tls: { ca: authority.cert, cert } }), /needs its key/);
    assert.throws(() => new Worker({ tls: { key } }), /needs its key/);
    const folder = mkdtempSync(join(tmpdir(), "cairn-ts-tls-"));
    try {
      writeFileSync(join(folder, "client.pem"), cert);
      setEnvironment({ CAIRN_TLS_CERT: join(folder, "client.pem") });
      assert.throws(() => new CairnSaver(), /needs its key/);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  test("a file that cannot be read, named in the error", () => {
    const missing = join(tmpdir(), "cairn-no-such-ca.pem");
    const namesIt = (error: Error) => error.message.includes(missing);
    assert.throws(() => new Client({ tls: { caFile: missing } }), namesIt);
    setEnvironment({ CAIRN_TLS_CA: missing });
    assert.throws(() => new Worker(), namesIt);
  });

  test("a file that is not PEM", () => {
    const folder = mkdtempSync(join(tmpdir(), "cairn-ts-tls-"));
    try {
      const notPem = join(folder, "ca.der");
      writeFileSync(notPem, "not a certificate");
      assert.throws(() => new Client({ tls: { caFile: notPem } }), /not PEM/);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  test("a credential with a space or a newline", () => {
    assert.throws(() => new Client({ token: "abc def" }), /token holds characters/);
    setEnvironment({ CAIRN_API_KEY: "cairn_abc\ndef" });
    assert.throws(() => new Worker(), /CAIRN_API_KEY holds characters/);
  });

  test("a credential sent in plaintext to another machine is warned about once", async () => {
    const warning = new Promise<Error>((resolve) => process.once("warning", resolve));
    // Loopback addresses and TLS do not warn; the first warning names the remote address.
    new Client({ address: "127.0.0.1:50051", token: TOKEN }).close();
    new Client({ address: "localhost:50051", token: TOKEN }).close();
    new Client({ address: "192.0.2.1:50051", token: TOKEN, tls: true }).close();
    new Client({ address: ["192.0.2.2:50051", "192.0.2.3:50051"], token: TOKEN }).close();
    const emitted = await warning;
    assert.equal((emitted as Error & { code?: string }).code, "CAIRN_PLAINTEXT_CREDENTIAL");
    assert.match(emitted.message, /^sending a credential to 192\.0\.2\.2:50051 without TLS/);
  });

  test("an invalid namespace", () => {
    assert.throws(() => new Client({ namespace: "Team A" }), RangeError);
    assert.throws(() => new Client({ namespace: "*" }), RangeError);
    setEnvironment({ CAIRN_NAMESPACE: "-bad" });
    assert.throws(() => new CairnSaver(), RangeError);
  });

  test("CAIRN_TLS off with a CA given, or not a boolean", () => {
    setEnvironment({ CAIRN_TLS: "0", CAIRN_TLS_CA: "/etc/ca.pem" });
    assert.throws(() => new Client(), /CAIRN_TLS is off/);
    restoreEnvironment();
    setEnvironment({ CAIRN_TLS: "maybe" });
    assert.throws(() => new Client(), /CAIRN_TLS must be/);
  });

  test("an http:// address with TLS on", () => {
    assert.throws(() => new Client({ address: "http://127.0.0.1:50051", tls: true }), /http:\/\//);
    assert.throws(() => new Worker({ address: "http://127.0.0.1:50051", tls: true }), /http:\/\//);
  });
});

describe("TLS", () => {
  let authority: Authority;
  let folder: string;
  let caFile: string;
  let server: RecordingServer;
  before(async () => {
    authority = createAuthority();
    folder = mkdtempSync(join(tmpdir(), "cairn-ts-tls-"));
    caFile = join(folder, "ca.pem");
    writeFileSync(caFile, authority.cert);
    const tls = authority.issue({ commonName: "cairn", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"] });
    server = await startRecordingServer({ tls });
  });
  after(async () => {
    await server.close();
    rmSync(folder, { recursive: true, force: true });
  });
  afterEach(() => {
    restoreEnvironment();
    server.calls.splice(0);
  });

  test("reaches a TLS server with its CA (a file or PEM), credentials included", async () => {
    for (const tls of [{ caFile }, { ca: authority.cert }, { ca: Buffer.from(authority.cert) }]) {
      const client = new Client({ address: server.address, tls, token: TOKEN, namespace: "secure" });
      try {
        await clientCalls(client);
      } finally {
        client.close();
      }
    }
    assert.equal(server.calls.length, 12);
    for (const call of server.calls) {
      assert.deepEqual(credentialsOf(call), { authorization: `Bearer ${TOKEN}`, namespace: "secure" });
    }
  });

  test("Worker and CairnSaver over TLS", async () => {
    const call = await connectWorker(server, { tls: { caFile }, apiKey: API_KEY });
    assert.equal(call.authorization, `Bearer ${API_KEY}`);
    const saver = new CairnSaver({ address: server.address, tls: { caFile } });
    try {
      assert.equal(await saver.getTuple({ configurable: { thread_id: "t1" } }), undefined);
    } finally {
      saver.close();
    }
  });

  test("CAIRN_TLS_CA turns TLS on", async () => {
    setEnvironment({ CAIRN_TLS_CA: caFile });
    const client = new Client({ address: server.address });
    try {
      assert.equal((await client.getThread("t1")).threadId, "t1");
    } finally {
      client.close();
    }
  });

  test("fails without the CA: the system's roots do not know it", async () => {
    for (const options of [{ tls: true }, {}]) {
      setEnvironment({ CAIRN_TLS: "1" });
      const client = new Client({ address: server.address, ...options });
      try {
        await assert.rejects(client.getThread("t1"), (error: Error) => {
          assert.ok(error instanceof UnavailableError, String(error));
          assert.match(error.message, /TLS handshake failed: .*certificate/);
          return true;
        });
      } finally {
        client.close();
      }
    }
    assert.equal(server.calls.length, 0);
  });

  test("fails with another CA", async () => {
    const client = new Client({ address: server.address, tls: { ca: createAuthority("Other CA").cert } });
    try {
      await assert.rejects(client.getThread("t1"), UnavailableError);
    } finally {
      client.close();
    }
  });

  test("a plaintext client does not reach a TLS server", async () => {
    const client = new Client({ address: server.address, failoverTimeoutMs: 0 });
    try {
      await assert.rejects(client.getThread("t1"), CairnError);
    } finally {
      client.close();
    }
    assert.equal(server.calls.length, 0);
  });

  test("serverName checks the certificate against another name than the address's", async () => {
    const named = await startRecordingServer({
      tls: authority.issue({ commonName: "cairn", dnsNames: ["cairn.internal"] }),
    });
    try {
      const wrong = new Client({ address: named.address, tls: { caFile } });
      try {
        await assert.rejects(wrong.getThread("t1"), /TLS handshake failed: .*altnames/);
      } finally {
        wrong.close();
      }
      setEnvironment({ CAIRN_TLS_CA: caFile, CAIRN_TLS_SERVER_NAME: "cairn.internal" });
      for (const options of [{ tls: { caFile, serverName: "cairn.internal" } }, {}]) {
        const client = new Client({ address: named.address, ...options });
        try {
          assert.equal((await client.getThread("t1")).threadId, "t1");
        } finally {
          client.close();
        }
      }
    } finally {
      await named.close();
    }
  });
});

describe("mTLS", () => {
  let authority: Authority;
  let folder: string;
  let server: RecordingServer;
  const files = { caFile: "", certFile: "", keyFile: "" };
  before(async () => {
    authority = createAuthority();
    folder = mkdtempSync(join(tmpdir(), "cairn-ts-mtls-"));
    const client = authority.issue({ commonName: "worker-1", usage: "client" });
    files.caFile = join(folder, "ca.pem");
    files.certFile = join(folder, "worker-1.pem");
    files.keyFile = join(folder, "worker-1.key");
    writeFileSync(files.caFile, authority.cert);
    writeFileSync(files.certFile, client.cert);
    writeFileSync(files.keyFile, client.key);
    const tls = authority.issue({ commonName: "cairn", ipAddresses: ["127.0.0.1"] });
    server = await startRecordingServer({ tls: { ...tls, clientCa: authority.cert } });
  });
  after(async () => {
    await server.close();
    rmSync(folder, { recursive: true, force: true });
  });
  afterEach(() => {
    restoreEnvironment();
    server.calls.splice(0);
  });

  test("the client certificate names the caller, for every surface", async () => {
    const client = new Client({ address: server.address, tls: files });
    try {
      await clientCalls(client);
    } finally {
      client.close();
    }
    const call = await connectWorker(server, { tls: files, namespace: "team-a" });
    const saver = new CairnSaver({ address: server.address, tls: files });
    try {
      await saver.getTuple({ configurable: { thread_id: "t1" } });
    } finally {
      saver.close();
    }
    assert.equal(call.namespace, "team-a");
    assert.deepEqual(
      server.calls.map((c) => [c.method, c.peer]),
      [
        ["GetThread", "worker-1"],
        ["ListWorkers", "worker-1"],
        ["JoinRun", "worker-1"],
        ["Session", "worker-1"],
        ["Connect", "worker-1"],
        ["GetTuple", "worker-1"],
      ],
    );
  });

  test("PEM content and the CAIRN_TLS_* variables work as the files do", async () => {
    const pem = authority.issue({ commonName: "worker-2", usage: "client" });
    const inline = new Client({ address: server.address, tls: { ca: authority.cert, ...pem } });
    try {
      await inline.getThread("t1");
    } finally {
      inline.close();
    }
    setEnvironment({ CAIRN_TLS_CA: files.caFile, CAIRN_TLS_CERT: files.certFile, CAIRN_TLS_KEY: files.keyFile });
    const fromEnv = new Client({ address: server.address });
    try {
      await fromEnv.getThread("t2");
    } finally {
      fromEnv.close();
    }
    // The settings a tls object leaves out come from the environment.
    const merged = new Client({ address: server.address, tls: { ca: authority.cert } });
    try {
      await merged.getThread("t3");
    } finally {
      merged.close();
    }
    assert.deepEqual(
      server.calls.map((c) => c.peer),
      ["worker-2", "worker-1", "worker-1"],
    );
  });

  test("without a client certificate the server refuses the connection", async () => {
    const client = new Client({ address: server.address, tls: { caFile: files.caFile } });
    try {
      await assert.rejects(client.getThread("t1"), /TLS handshake failed: .*certificate required/);
    } finally {
      client.close();
    }
    assert.equal(server.calls.length, 0);
  });
});

describe("refused calls", () => {
  let server: RecordingServer;
  let client: Client;
  before(async () => {
    server = await startRecordingServer();
    client = new Client({ address: server.address, token: TOKEN });
  });
  after(async () => {
    client.close();
    await server.close();
  });

  test("UNAUTHENTICATED throws UnauthenticatedError", async () => {
    await assert.rejects(client.getThread("no-credential"), (error: Error) => {
      assert.ok(error instanceof UnauthenticatedError);
      assert.ok(error instanceof CairnError);
      assert.equal(error.code, "UNAUTHENTICATED");
      assert.equal(error.reason, "UNAUTHENTICATED");
      assert.equal(error.message, "refused: unauthenticated");
      return true;
    });
  });

  test("PERMISSION_DENIED throws PermissionDeniedError", async () => {
    await assert.rejects(client.getThread("too-weak"), (error: Error) => {
      assert.ok(error instanceof PermissionDeniedError);
      assert.ok(error instanceof CairnError);
      assert.equal(error.code, "PERMISSION_DENIED");
      assert.equal(error.reason, "PERMISSION_DENIED");
      return true;
    });
  });

  test("CairnSaver throws them too", async () => {
    const saver = new CairnSaver({ address: server.address });
    try {
      await assert.rejects(saver.getTuple({ configurable: { thread_id: "no-credential" } }), UnauthenticatedError);
      await assert.rejects(saver.getTuple({ configurable: { thread_id: "too-weak" } }), PermissionDeniedError);
    } finally {
      saver.close();
    }
  });
});
