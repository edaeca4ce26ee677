/**
 * What every transaction shares: its timers (owned here, cleared in one place) and
 * the context it sends through. RFC 3261 section 17.
 */
import type { CancelTimer, Clock, TimerValues } from "./clock.ts";
import type { SipRequest } from "./message.ts";
import { isReliable, type SipAddress } from "./transport.ts";

export interface TransactionContext {
  readonly clock: Clock;
  readonly timers: TimerValues;
  readonly send: (bytes: Uint8Array, destination: SipAddress) => Promise<void>;
  /** Counts shared by every transaction of the layer. */
  readonly stats: { retransmissionsSent: number };
  /** An INVITE server transaction sent its final response, `ms` after the INVITE arrived. */
  readonly onInviteAnswered?: ((request: SipRequest, status: number, ms: number) => void) | undefined;
}

const NO_BODY = new Uint8Array(0);

/**
 * What a server transaction keeps of its request once it has sent a final response:
 * what names it (method, URI, Call-ID, CSeq, From, To, Via), not its header lines or
 * body, so no response can be built from it any more (a TU that sends its 2xx again
 * sends the response it built). A completed transaction waits 64*T1 (32 s) only to
 * resend its response's bytes; the whole parsed request kept that long cost ~3 KB
 * per call.
 */
export function compactRequest(request: SipRequest): SipRequest {
  const { via, from, to, uri, callId, cseq, method } = request;
  // A JSON round trip copies the strings: the parsed ones are slices of the whole
  // header section, which they would otherwise keep alive.
  const copy = JSON.parse(JSON.stringify({ via, from, to, uri, callId, cseq, method }));
  return { ...request, ...copy, headers: [], body: NO_BODY };
}

/** Why a transaction ended: normally, on a timeout (H, F) or on a transport error. */
export type TerminationReason = "normal" | "timeout" | "transport-error";

export abstract class Transaction {
  /** Key under which the transaction layer finds it (section 17.1.3 / 17.2.3). */
  readonly key: string;
  protected readonly ctx: TransactionContext;
  #timers = new Map<string, CancelTimer>();
  #terminated = false;
  #onTerminated: ((reason: TerminationReason) => void)[] = [];

  /**
   * Over a stream (TCP, TLS): no retransmission timers (sections 17.1.1.2, 17.2.1), and
   * zero for timers I, J and K, which only absorb retransmissions.
   */
  protected readonly reliable: boolean;

  protected constructor(key: string, ctx: TransactionContext, destination: SipAddress) {
    this.key = key;
    this.ctx = ctx;
    this.reliable = isReliable(destination);
  }

  /** Names of the timers currently armed (for tests and diagnostics). */
  get armedTimers(): string[] {
    return [...this.#timers.keys()].sort();
  }

  get terminated(): boolean {
    return this.#terminated;
  }

  /** Registers a listener for the end of this transaction. */
  onTerminated(listener: (reason: TerminationReason) => void): void {
    this.#onTerminated.push(listener);
  }

  /** (Re)arms timer `name`; any earlier arming of it is cancelled first. */
  protected arm(name: string, ms: number, fire: () => void): void {
    this.disarm(name);
    this.#timers.set(
      name,
      this.ctx.clock.setTimer(ms, () => {
        this.#timers.delete(name);
        fire();
      }),
    );
  }

  protected disarm(name: string): void {
    const cancel = this.#timers.get(name);
    if (cancel !== undefined) {
      cancel();
      this.#timers.delete(name);
    }
  }

  /** Sends bytes; a failure becomes a transport-error input (section 17.1.4, 17.2.4). */
  /** Sends again what was sent before (a timer fired, or the peer retransmitted); counted. */
  protected retransmit(bytes: Uint8Array, destination: SipAddress): void {
    this.ctx.stats.retransmissionsSent++;
    this.transmit(bytes, destination);
  }

  protected transmit(bytes: Uint8Array, destination: SipAddress): void {
    this.ctx.send(bytes, destination).catch(() => this.transportError());
  }

  protected abstract transportError(): void;

  /** Stops every timer and tells listeners once; idempotent. */
  terminate(reason: TerminationReason = "normal"): void {
    if (this.#terminated) return;
    this.#terminated = true;
    for (const cancel of this.#timers.values()) cancel();
    this.#timers.clear();
    for (const listener of this.#onTerminated) listener(reason);
    this.#onTerminated = [];
  }
}
