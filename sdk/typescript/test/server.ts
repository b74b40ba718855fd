/**
 * A real `cairn serve` process for the tests: listens on 127.0.0.1 with a
 * port the OS picks (read from the line it prints), keeps its SQLite file in
 * a temporary folder, and is stopped by its own PID.
 */

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createServer } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** The repository root (this file runs from sdk/typescript/dist/test). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");

export interface Server {
  address: string;
  process: ChildProcess;
  output: string[];
  /** The service's timer clock, with `testClock`. */
  clock?: TestClock;
  stop(): Promise<void>;
}

/** The timer clock of a server started with `testClock`: the wall clock plus
 * an offset the test moves (CAIRN_CLOCK_FILE, cairn_server/timers/clock.py). */
export interface TestClock {
  /** Seconds the service's timer clock is ahead of the wall clock. */
  readonly offset: number;
  /** Now on the service's timer clock, in ms since the epoch. */
  now(): number;
  /** Moves the service's timer clock forward; the file is replaced whole
   * (rename), so the server never reads a half-written one. */
  advance(seconds: number): void;
}

function testClock(file: string): TestClock {
  let offset = 0;
  const write = () => {
    writeFileSync(`${file}.new`, String(offset));
    renameSync(`${file}.new`, file);
  };
  write();
  return {
    get offset() {
      return offset;
    },
    now: () => Date.now() + offset * 1000,
    advance(seconds) {
      offset += seconds;
      write();
    },
  };
}

const SERVING = /cairn serving on .*\(port (\d+)\)/;

export interface ServerOptions {
  /** The port to listen on; 0 (the default) lets the OS pick one. */
  port?: number;
  /** The folder of the SQLite file; a new temporary one by default (removed on stop). */
  folder?: string;
  timeoutMs?: number;
  /** More arguments for `cairn serve` (e.g. `--tls-cert`, `--access-file`),
   * after the address, store and log level. */
  args?: readonly string[];
  /** Environment variables set (over this process's) for `cairn serve`,
   * e.g. CAIRN_JWT_SECRET. */
  env?: Readonly<Record<string, string>>;
  /** Durable time on a clock the test moves (`server.clock`), not the wall clock. */
  testClock?: boolean;
}

export async function startServer(options: ServerOptions = {}): Promise<Server> {
  const { port: wanted = 0, timeoutMs = 30_000 } = options;
  const folder = options.folder ?? mkdtempSync(join(tmpdir(), "cairn-ts-"));
  const bin = process.env.CAIRN_BIN ?? join(ROOT, ".venv", "bin", "cairn");
  const store = `sqlite:///${folder}/cairn.db`;
  const clockFile = join(folder, "clock");
  const clock = options.testClock ? testClock(clockFile) : undefined;
  const clockEnv = clock ? { CAIRN_CLOCK_FILE: clockFile } : {};
  const args = ["serve", "--address", `127.0.0.1:${wanted}`, "--store", store];
  const child = spawn(bin, [...args, "--log-level", "warning", ...(options.args ?? [])], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PYTHONUNBUFFERED: "1", ...clockEnv, ...options.env },
  });
  const output: string[] = [];
  createInterface({ input: child.stderr! }).on("line", (line) => output.push(line));
  const port = await new Promise<number>((resolvePort, reject) => {
    const timer = setTimeout(() => reject(new Error(`cairn serve printed no port:\n${output.join("\n")}`)), timeoutMs);
    createInterface({ input: child.stdout! }).on("line", (line) => {
      output.push(line);
      const match = SERVING.exec(line);
      if (match) {
        clearTimeout(timer);
        resolvePort(Number(match[1]));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`cairn serve exited with ${code}:\n${output.join("\n")}`));
    });
    child.once("error", reject);
  });
  const stop = async () => {
    await stopProcess(child);
    if (options.folder === undefined) rmSync(folder, { recursive: true, force: true });
  };
  return { address: `127.0.0.1:${port}`, process: child, output, clock, stop };
}

/** SIGTERM by PID, then SIGKILL if it has not exited within `timeoutMs`. */
export async function stopProcess(child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolveExit) => child.once("exit", () => resolveExit()));
  process.kill(child.pid!, "SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolveLate) => (timer = setTimeout(() => resolveLate(true), timeoutMs)));
  if (await Promise.race([exited.then(() => false), late])) {
    process.kill(child.pid!, "SIGKILL");
    await exited;
  }
  clearTimeout(timer);
}

/** A port free on 127.0.0.1 right now: for a server started later, or an
 * address nothing listens on. */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolveListen, reject) => {
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", resolveListen);
  });
  const address = probe.address();
  await new Promise<void>((resolveClose) => probe.close(() => resolveClose()));
  if (address === null || typeof address === "string") throw new Error("no TCP port");
  return address.port;
}
