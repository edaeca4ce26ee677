/**
 * Time as the stack sees it. Transactions and dialogs arm timers through a `Clock`
 * so tests can run them on fake time (`FakeClock`) and production on real time.
 */
import { getLogger } from "@logtape/logtape";
import { TimerQueue } from "./timer_queue.ts";

const log = getLogger(["sip", "timer"]);

/** Cancels a timer; calling it again does nothing. */
export type CancelTimer = () => void;

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Calls `fire` once after `ms` milliseconds unless cancelled first. */
  setTimer(ms: number, fire: () => void): CancelTimer;
}

/**
 * Real time: every timer of the process in one queue behind one runtime timer
 * (`timer_queue.ts`). A timer that throws is logged, never left to end the process: one
 * bad dialog (a peer's odd message that slipped past the parser) must not cost every call.
 */
export const realClock: Clock = new TimerQueue((error) =>
  log.error("A SIP timer failed: {error}", { error })
);

/** A clock that only moves when told to; for tests of timer-driven state machines. */
export class FakeClock implements Clock {
  #now = 0;
  #timers = new Map<number, { at: number; fire: () => void }>();
  #nextId = 0;

  now(): number {
    return this.#now;
  }

  setTimer(ms: number, fire: () => void): CancelTimer {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.#now + ms, fire });
    return () => this.#timers.delete(id);
  }

  /** Number of armed timers. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, firing due timers in order. */
  advance(ms: number): void {
    const until = this.#now + ms;
    for (;;) {
      let nextId = -1;
      let next: { at: number; fire: () => void } | undefined;
      for (const [id, t] of this.#timers) {
        if (t.at <= until && (next === undefined || t.at < next.at)) {
          next = t;
          nextId = id;
        }
      }
      if (next === undefined) break;
      this.#timers.delete(nextId);
      this.#now = next.at;
      next.fire();
    }
    this.#now = until;
  }
}

/** RFC 3261 timer base values (section 17.1.1.1, table 4), in milliseconds. */
export interface TimerValues {
  /** RTT estimate. Default 500. */
  readonly t1: number;
  /** Maximum retransmit interval for non-INVITE requests and INVITE responses. Default 4000. */
  readonly t2: number;
  /** Maximum time a message remains in the network. Default 5000. */
  readonly t4: number;
}

export const DEFAULT_TIMERS: TimerValues = { t1: 500, t2: 4000, t4: 5000 };
