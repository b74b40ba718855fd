/**
 * Builds a compat scenario's functions with this SDK's own `task` and
 * `entrypoint` (see compat/README.md for the step language).
 */

import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import {
  Entrypoint,
  TaskFailedError,
  entrypoint,
  getPreviousState,
  getWriter,
  interrupt,
  sleep,
  task,
  type RetryPolicy,
  type Servable,
} from "../src/index.js";
import { ROOT } from "./server.js";

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Step = { [key: string]: Json };

export interface ScenarioSpec {
  description: string;
  entrypoint: string;
  functions: Record<string, { kind: "task" | "entrypoint"; retry_policy?: Step; steps: Step[] }>;
  runs: Step[];
}

export function loadScenarios(): { name: string; spec: ScenarioSpec }[] {
  const folder = join(ROOT, "compat", "scenarios");
  return readdirSync(folder)
    .filter((file) => file.endsWith(".json"))
    .sort()
    .map((file) => ({
      name: file.replace(/\.json$/, ""),
      spec: JSON.parse(readFileSync(join(folder, file), "utf8")) as ScenarioSpec,
    }));
}

/** "$name" reads a variable, {"$concat": [...]} joins strings, {"$add": [...]}
 * adds numbers (null counts as 0). */
export function evaluate(expr: Json, env: Record<string, unknown>): unknown {
  if (typeof expr === "string" && expr.startsWith("$")) return env[expr.slice(1)];
  if (Array.isArray(expr)) return expr.map((item) => evaluate(item, env));
  if (expr !== null && typeof expr === "object") {
    const keys = Object.keys(expr);
    if (keys.length === 1 && keys[0] === "$concat") {
      return (expr.$concat as Json[]).map((item) => String(evaluate(item, env))).join("");
    }
    if (keys.length === 1 && keys[0] === "$add") {
      return (expr.$add as Json[]).reduce<number>(
        (sum, item) => sum + ((evaluate(item, env) as number | null) ?? 0),
        0,
      );
    }
    return Object.fromEntries(keys.map((key) => [key, evaluate(expr[key], env)]));
  }
  return expr;
}

function retryPolicy(spec: Step | undefined): RetryPolicy | undefined {
  if (spec === undefined) return undefined;
  return {
    maxAttempts: (spec.max_attempts as number) ?? 3,
    initialInterval: ((spec.initial_interval as number) ?? 0.5) * 1000,
    backoffFactor: (spec.backoff_factor as number) ?? 2,
    jitter: (spec.jitter as boolean) ?? true,
  };
}

/** A scenario's functions, built with the SDK, and what they did. */
export class Scenario {
  readonly executions = new Map<string, number>();
  readonly functions = new Map<string, Servable>();
  /** Resolves when a stall_once step stalls. */
  readonly stalled: Promise<void>;
  private markStalled: () => void = () => undefined;

  constructor(readonly spec: ScenarioSpec) {
    this.stalled = new Promise((resolve) => (this.markStalled = resolve));
    for (const [name, fn] of Object.entries(spec.functions)) {
      const body = (input: unknown) => this.run(name, fn.steps, input);
      const options = { name, retry: retryPolicy(fn.retry_policy) };
      this.functions.set(name, fn.kind === "entrypoint" ? entrypoint(options, body) : task(options, body));
    }
  }

  count(name: string): number {
    return this.executions.get(name) ?? 0;
  }

  private call(name: string, input: unknown): Promise<unknown> {
    const fn = this.functions.get(name);
    if (fn instanceof Entrypoint) return fn.invoke(input);
    return (fn as unknown as (input: unknown) => Promise<unknown>)(input);
  }

  private async run(name: string, steps: Step[], input: unknown): Promise<unknown> {
    this.executions.set(name, this.count(name) + 1);
    const replay = this.count(name) > 1;
    const env: Record<string, unknown> = { input };
    if (this.spec.functions[name].kind === "entrypoint") env.previous = getPreviousState() ?? null;
    for (const step of steps) {
      if ("call" in step) {
        const target = (replay && step.on_replay ? step.on_replay : step.call) as string;
        try {
          env[(step.as as string) ?? "_"] = await this.call(target, evaluate(step.input, env));
        } catch (error) {
          if (!(step.catch && error instanceof TaskFailedError)) throw error;
          env[(step.as as string) ?? "_"] = { error: { message: error.message } };
        }
      } else if ("parallel" in step) {
        const calls = (step.parallel as Step[]).map((c) =>
          this.call(c.call as string, evaluate(c.input, env)),
        );
        env[step.as as string] = await Promise.all(calls);
      } else if ("interrupt" in step) {
        env[step.as as string] = interrupt(evaluate(step.interrupt, env));
      } else if ("sleep" in step) {
        await sleep((evaluate(step.sleep, env) as number) * 1000);
      } else if ("write" in step) {
        getWriter()(evaluate(step.write, env));
      } else if ("fail" in step) {
        const below = step.while_executions_below as number | undefined;
        if (below === undefined || this.count(name) < below) {
          const failure = step.fail as { message: string; retryable: boolean };
          // The default retryOn retries plain errors, not programming errors.
          throw failure.retryable ? new Error(failure.message) : new TypeError(failure.message);
        }
      } else if ("stall_once" in step) {
        if (this.count(name) === 1) {
          this.markStalled();
          await new Promise(() => undefined); // until the worker is dropped
        }
      } else if ("return" in step) {
        return evaluate(step.return, env);
      } else if ("final" in step) {
        const final = step.final as Step;
        return entrypoint.final({ value: evaluate(final.value, env), save: evaluate(final.save, env) });
      } else {
        throw new Error(`unknown step ${JSON.stringify(step)}`);
      }
    }
    return null;
  }
}
