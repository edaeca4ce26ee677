// The SIP timer queue (sip/timer_queue.ts) beside the runtime's own timers, in the same
// run: arming a timer and cancelling it (what most SIP timers come to), with 100,000
// others armed, as with 100,000 dialogs up.
import { TimerQueue } from "../sip/timer_queue.ts";
import { type Figures, measure } from "./codec.ts";

export function timerBench(): string[] {
  const queue = new TimerQueue(() => {});
  const held = Array.from({ length: 100_000 }, (_, i) => queue.setTimer(3_600_000 + i, () => {}));
  const runtimeHeld = Array.from({ length: 100_000 }, (_, i) => setTimeout(() => {}, 3_600_000 + i));
  let ms = 0;
  const ours = measure(() => queue.setTimer(500 + (ms++ % 32_000), () => {})());
  const runtime = measure(() => clearTimeout(setTimeout(() => {}, 500 + (ms++ % 32_000))));
  for (const cancel of held) cancel();
  for (const id of runtimeHeld) clearTimeout(id);
  const row = (name: string, f: Figures) =>
    `${name.padEnd(34)} ${Math.round(f.opsPerSecond).toString().padStart(9)}/s  median ${
      f.medianUs.toFixed(2)
    } µs  p99 ${f.p99Us.toFixed(2)} µs  ratio to baseline ${
      (f.opsPerSecond / runtime.opsPerSecond).toFixed(2)
    }`;
  return [
    "timers: arm and cancel one, with 100,000 armed",
    row("SIP timer queue", ours),
    row("  baseline setTimeout/clearTimeout", runtime),
  ];
}
