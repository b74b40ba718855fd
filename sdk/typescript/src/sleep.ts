/**
 * Durable sleep: `sleep(ms)` and `sleepUntil(date)` inside an entrypoint.
 *
 * A sleep is one of the entrypoint's calls: it takes the next call position
 * and is recorded in the run's journal under the name "__sleep__". The
 * first time, the entrypoint stops there (as at `interrupt()`) and the
 * service keeps the timer; when it is due the entrypoint is replayed, its
 * recorded task calls return their results without running again, and the
 * sleep returns at once. The protocol is TaskSleeping in worker_service.proto.
 */

import { current } from "./context.js";

// google.protobuf.Duration and Timestamp hold no more than this.
const MAX_DURATION_MS = 315_576_000_000_000; // 10,000 years
const MIN_WAKE_MS = -62_135_596_800_000; // 0001-01-01T00:00:00Z (Date.UTC reads year 1 as 1901)
const MAX_WAKE_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/**
 * Sleep `ms` milliseconds, durably, inside an entrypoint: the run waits for
 * a timer the service holds, not for this process. While it sleeps the run
 * stays `running` (`run.waiting` has reason "timer" and `until`), holds
 * no worker, and survives crashes and restarts of workers and of the
 * service; when the timer is due the entrypoint is replayed and the sleep
 * returns. Tasks called before the sleep do not run again, but the
 * entrypoint's own code does, so side effects belong in tasks. Cancelling the
 * run cancels the sleep. The timer starts when the service records it, on
 * the service's clock.
 *
 * Only a run's entrypoint may sleep: in a task or a graph node this throws,
 * and an entrypoint run as a nested workflow (`invoke`) fails with the
 * service's SleepNotAllowedError. `ms` must be a finite number, not negative
 * (a RangeError or TypeError otherwise). What an awaited first sleep throws
 * (`Sleeping`) is how the entrypoint stops there: let it through (a body
 * that catches it stops at the sleep anyway).
 *
 *     const remind = entrypoint({ name: "remind" }, async (user: string) => {
 *       await sendReminder(user);           // a task: recorded, not sent twice
 *       await sleep(24 * 60 * 60 * 1000);   // a day; no worker is held meanwhile
 *       return await checkAnswered(user);   // a task, run after the day
 *     });
 */
export function sleep(ms: number): Promise<void> {
  if (typeof ms !== "number") throw new TypeError(`sleep takes a number of ms, not ${typeof ms}`);
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_DURATION_MS) {
    throw new RangeError(`sleep takes a finite number of ms from 0 to ${MAX_DURATION_MS}, not ${ms}`);
  }
  return current().sleep(ms);
}

/**
 * Sleep until `date`, durably, inside an entrypoint, as `sleep()` does for a
 * duration. A time already past wakes the run at once (after one replay).
 * The service's clock decides when `date` has come.
 *
 *     const digest = entrypoint({ name: "digest" }, async (inbox: string) => {
 *       const tomorrow = new Date();
 *       tomorrow.setUTCHours(24, 0, 0, 0);
 *       await sleepUntil(tomorrow); // midnight UTC
 *       return await summarize(inbox);
 *     });
 */
export function sleepUntil(date: Date): Promise<void> {
  if (!(date instanceof Date)) throw new TypeError(`sleepUntil takes a Date, not ${typeof date}`);
  const ms = date.getTime();
  if (!(ms >= MIN_WAKE_MS && ms <= MAX_WAKE_MS)) {
    throw new RangeError(`sleepUntil takes a valid Date from year 1 to 9999, not ${String(date)}`);
  }
  return current().sleep(new Date(ms));
}
