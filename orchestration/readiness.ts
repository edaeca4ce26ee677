/**
 * Readiness (CONTRACTS.md 7.4): ready only while the SIP socket is bound, the dialplan
 * and media channels are connected (or connect on a probe), the broker connection is
 * up, and the instance is not draining. While not ready, OPTIONS gets 503 and new
 * INVITEs 503 + Retry-After at once, so the gateway's dispatcher takes it out.
 *
 * A backend restart or a broker restart is ridden out without failing calls (calls wait
 * for the channel within the setup budget; events wait in the outbox), so a channel or
 * the broker counts as down only once it has been down longer than its grace. A broker
 * that refuses our credentials is down at once: waiting will not fix a password.
 */
import { getLogger } from "@logtape/logtape";
import type { ChannelState } from "./grpc.ts";
import type { EventPublisher } from "./events.ts";

const log = getLogger(["orchestration", "readiness"]);

export interface ReadinessInputs {
  /** True while the SIP socket is bound and read. */
  readonly sipBound: () => boolean;
  /** Backend channel states; `probe` asks idle channels to connect. Unset: in-memory backends. */
  readonly channels?: ((probe: boolean) => Readonly<Record<string, ChannelState>>) | undefined;
  readonly events: Pick<EventPublisher, "connected" | "lastError">;
  /** False once draining. */
  readonly accepting: () => boolean;
  /** How long a channel may be failing before it counts (default 2000 ms, the setup budget). */
  readonly channelGraceMs?: number;
  /** How long the broker may be away before it counts (default 5000 ms). */
  readonly brokerGraceMs?: number;
}

export interface Check {
  readonly ok: boolean;
  readonly state: string;
}

export interface ReadinessReport {
  readonly status: "ready" | "not_ready";
  readonly checks: Readonly<Record<string, Check>>;
}

/** Re-evaluates once a second (one timer, owned here) so SIP answers read a cached verdict. */
const INTERVAL_MS = 1000;

export class Readiness {
  readonly #inputs: ReadinessInputs;
  /** Since when each check has been failing. */
  readonly #downSince = new Map<string, number>();
  #ready = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** How late the last interval fired: the event loop's responsiveness, for /healthz. */
  #lagMs = 0;
  #lastTick = performance.now();

  constructor(inputs: ReadinessInputs) {
    this.#inputs = inputs;
  }

  /** The cached verdict (at most a second old). */
  get ready(): boolean {
    return this.#ready;
  }

  get eventLoopLagMs(): number {
    return this.#lagMs;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.evaluate(true);
    this.#lastTick = performance.now();
    this.#timer = setInterval(() => {
      const now = performance.now();
      this.#lagMs = Math.max(0, now - this.#lastTick - INTERVAL_MS);
      this.#lastTick = now;
      this.evaluate(true);
    }, INTERVAL_MS);
    Deno.unrefTimer(this.#timer);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Checks everything now (probing idle channels when `probe`), caches and returns the verdict. */
  evaluate(probe = false): ReadinessReport {
    const now = performance.now();
    const checks: Record<string, Check> = {};
    const graced = (name: string, up: boolean, state: string, graceMs: number, atOnce = false): void => {
      if (up) {
        this.#downSince.delete(name);
        checks[name] = { ok: true, state };
        return;
      }
      const since = this.#downSince.get(name) ?? now;
      this.#downSince.set(name, since);
      checks[name] = { ok: !atOnce && now - since < graceMs, state };
    };
    const sip = this.#inputs.sipBound();
    checks.sip = { ok: sip, state: sip ? "bound" : "closed" };
    const channels = this.#inputs.channels?.(probe);
    for (const [service, state] of Object.entries(channels ?? {})) {
      // Only READY is up. An IDLE channel the probe asked to connect, or a CONNECTING
      // one, gets the grace to get there; a dead backend's channel cycles through
      // TRANSIENT_FAILURE, IDLE and CONNECTING, and must not look up in between.
      graced(service, state === "READY", state, this.#inputs.channelGraceMs ?? 2000);
    }
    const events = this.#inputs.events;
    graced(
      "broker",
      events.connected,
      events.connected ? "connected" : events.lastError ?? "connecting",
      this.#inputs.brokerGraceMs ?? 5000,
      events.lastError === "access_refused",
    );
    const accepting = this.#inputs.accepting();
    checks.draining = { ok: accepting, state: accepting ? "no" : "yes" };
    const ready = Object.values(checks).every((c) => c.ok);
    if (ready !== this.#ready) {
      const failing = Object.entries(checks).filter(([, c]) => !c.ok).map(([n, c]) => `${n}=${c.state}`);
      if (ready) log.info("Ready: taking calls");
      else {log.warn("Not ready ({failing}): OPTIONS and new INVITEs get 503", {
          failing: failing.join(", "),
        });}
      this.#ready = ready;
    }
    return { status: ready ? "ready" : "not_ready", checks };
  }
}
