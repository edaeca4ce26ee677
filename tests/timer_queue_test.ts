// The process's one timer queue (sip/timer_queue.ts) against a model: for any sequence
// of timers armed, cancelled and time passing, timers fire in due order (then in arming
// order), never after being cancelled, never early, and one runtime timer at most is set.
import assert from "node:assert/strict";
import fc from "fast-check";
import { type NativeTimers, TimerQueue } from "../sip/timer_queue.ts";

/** Runtime timers on fake time; counts how many are set at once. */
class FakeNative implements NativeTimers {
  time = 0;
  #pending = new Map<number, { at: number; fire: () => void }>();
  #next = 1;
  maxPending = 0;
  now(): number {
    return this.time;
  }
  setTimeout(fire: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#pending.set(id, { at: this.time + ms, fire });
    this.maxPending = Math.max(this.maxPending, this.#pending.size);
    return id;
  }
  clearTimeout(id: unknown): void {
    this.#pending.delete(id as number);
  }
  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const due = [...this.#pending].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.#pending.delete(due[0]);
      this.time = Math.max(this.time, due[1].at);
      due[1].fire();
    }
    this.time = until;
  }
}

type Op = { arm: number } | { cancel: number } | { advance: number };

Deno.test("timer queue - fires in due then arming order, never cancelled ones, never early, one runtime timer", () => {
  const op: fc.Arbitrary<Op> = fc.oneof(
    // Small delays often fall due together: then arming order decides.
    fc.record({ arm: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 5000 })) }),
    fc.record({ cancel: fc.nat(200) }),
    fc.record({ advance: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 3000 })) }),
  );
  fc.assert(fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
    const native = new FakeNative();
    const queue = new TimerQueue((error) => {
      throw error;
    }, native);
    const fired: number[] = [];
    const model = new Map<number, { at: number; cancel: () => void }>();
    let id = 0;
    for (const o of ops) {
      if ("arm" in o) {
        const mine = id++;
        const at = native.time + o.arm;
        const cancel = queue.setTimer(o.arm, () => {
          assert.ok(native.time >= at, `timer ${mine} fired at ${native.time}, due at ${at}`);
          fired.push(mine);
        });
        model.set(mine, { at, cancel });
      } else if ("cancel" in o) {
        const victim = model.get(o.cancel);
        victim?.cancel();
        model.delete(o.cancel);
      } else {
        const until = native.time + o.advance;
        const expected = [...model].filter(([, t]) => t.at <= until)
          .sort((a, b) => a[1].at - b[1].at || a[0] - b[0]).map(([k]) => k);
        fired.length = 0;
        native.advance(o.advance);
        assert.deepEqual(fired, expected);
        for (const k of expected) model.delete(k);
      }
      assert.equal(queue.size, model.size);
    }
    assert.ok(native.maxPending <= 1, `${native.maxPending} runtime timers at once`);
  }));
});

Deno.test("timer queue - a timer that throws is reported and the others still fire", () => {
  const native = new FakeNative();
  const errors: unknown[] = [];
  const queue = new TimerQueue((error) => errors.push(error), native);
  const fired: string[] = [];
  queue.setTimer(10, () => {
    throw new Error("bad dialog");
  });
  queue.setTimer(10, () => fired.push("second"));
  queue.setTimer(20, () => fired.push("third"));
  native.advance(25);
  assert.deepEqual(fired, ["second", "third"]);
  assert.equal(errors.length, 1);
});
