/**
 * Every SIP timer of the process in one queue, behind one runtime timer. Each
 * transaction and dialog arms several (RFC 3261 17.1.1.2, 17.2.1: A-K; 13.3.1.4: the
 * 2xx resent until ACK; RFC 4028 session refresh; the longest call); with one
 * `setTimeout` each, 100,000 dialogs were 200,000 runtime timers, each held in the
 * runtime's own (native) timer table. Here a timer is one small object in a binary
 * min-heap ordered by due time, then by arming order; cancelling removes it at once,
 * so a call that ends does not leave its 4-hour timer behind.
 */
import type { CancelTimer, Clock } from "./clock.ts";

/** What the queue needs of the runtime: its clock and one timer. */
export interface NativeTimers {
  now(): number;
  setTimeout(fire: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

const RUNTIME: NativeTimers = {
  now: () => performance.now(),
  setTimeout: (fire, ms) => setTimeout(fire, ms),
  clearTimeout: (id) => clearTimeout(id as ReturnType<typeof setTimeout>),
};

interface Entry {
  readonly at: number;
  readonly seq: number;
  readonly fire: () => void;
  /** Position in the heap; -1 once fired or cancelled. */
  index: number;
}

function before(a: Entry, b: Entry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

export class TimerQueue implements Clock {
  readonly #native: NativeTimers;
  readonly #onError: (error: unknown) => void;
  readonly #heap: Entry[] = [];
  #seq = 0;
  #nativeId: unknown;
  /** Due time the runtime timer is set for. */
  #nativeAt = Infinity;

  /** `onError`: a timer that throws is reported here and never stops the others. */
  constructor(onError: (error: unknown) => void, native: NativeTimers = RUNTIME) {
    this.#onError = onError;
    this.#native = native;
  }

  now(): number {
    return this.#native.now();
  }

  /** Timers armed and not yet fired or cancelled. */
  get size(): number {
    return this.#heap.length;
  }

  setTimer(ms: number, fire: () => void): CancelTimer {
    const entry: Entry = { at: this.#native.now() + Math.max(0, ms), seq: this.#seq++, fire, index: -1 };
    this.#push(entry);
    this.#arm();
    return () => {
      if (entry.index < 0) return;
      this.#remove(entry.index);
      this.#arm();
    };
  }

  /** Runs every due timer, in order; then waits for the next one. */
  #run(): void {
    this.#nativeId = undefined;
    this.#nativeAt = Infinity;
    const now = this.#native.now();
    for (let top = this.#heap[0]; top !== undefined && top.at <= now; top = this.#heap[0]) {
      this.#remove(0);
      try {
        top.fire();
      } catch (error) {
        this.#onError(error);
      }
    }
    this.#arm();
  }

  /** Keeps the runtime timer set for the earliest entry (and none when there is none). */
  #arm(): void {
    const top = this.#heap[0];
    if (top === undefined) {
      if (this.#nativeId !== undefined) this.#native.clearTimeout(this.#nativeId);
      this.#nativeId = undefined;
      this.#nativeAt = Infinity;
      return;
    }
    if (this.#nativeId !== undefined && this.#nativeAt <= top.at) return;
    if (this.#nativeId !== undefined) this.#native.clearTimeout(this.#nativeId);
    this.#nativeAt = top.at;
    this.#nativeId = this.#native.setTimeout(() => this.#run(), Math.max(0, top.at - this.#native.now()));
  }

  #push(entry: Entry): void {
    entry.index = this.#heap.length;
    this.#heap.push(entry);
    this.#up(entry.index);
  }

  #remove(index: number): void {
    const heap = this.#heap;
    const removed = heap[index] as Entry;
    const last = heap.pop() as Entry;
    removed.index = -1;
    if (last === removed) return;
    heap[index] = last;
    last.index = index;
    this.#up(index);
    this.#down(last.index);
  }

  #up(index: number): void {
    const heap = this.#heap;
    const entry = heap[index] as Entry;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = heap[parentIndex] as Entry;
      if (!before(entry, parent)) break;
      heap[index] = parent;
      parent.index = index;
      index = parentIndex;
    }
    heap[index] = entry;
    entry.index = index;
  }

  #down(index: number): void {
    const heap = this.#heap;
    const entry = heap[index] as Entry;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && before(heap[right] as Entry, heap[left] as Entry) ? right : left;
      if (!before(heap[child] as Entry, entry)) break;
      heap[index] = heap[child] as Entry;
      (heap[index] as Entry).index = index;
      index = child;
    }
    heap[index] = entry;
    entry.index = index;
  }
}
