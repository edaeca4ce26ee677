/**
 * Non-INVITE client transaction, RFC 3261 section 17.1.2 (used to send BYE).
 *
 *   trying --E--> trying (resend, E doubles to T2)   trying --1xx--> proceeding
 *   proceeding --E--> proceeding (resend every T2)
 *   trying|proceeding --final--> completed (Timer K) --K--> terminated
 *   trying|proceeding --F--> terminated (timeout)
 */
import type { SipRequest, SipResponse } from "./message.ts";
import { serializeMessage } from "./serialize.ts";
import { Transaction, type TransactionContext } from "./transaction.ts";
import type { SipAddress } from "./transport.ts";

export type ClientNonInviteState = "trying" | "proceeding" | "completed" | "terminated";

/** The transaction ended without a final response (Timer F, section 17.1.2.2). */
export class TransactionTimeoutError extends Error {
  override readonly name = "TransactionTimeoutError";
}

/** The transport could not send the request (section 17.1.4). */
export class TransportError extends Error {
  override readonly name = "TransportError";
}

export class ClientNonInviteTransaction extends Transaction {
  readonly kind = "client-non-invite";
  readonly request: SipRequest;
  readonly destination: SipAddress;
  /** Resolves with the final response; rejects with TransactionTimeoutError or TransportError. */
  readonly response: Promise<SipResponse>;
  #state: ClientNonInviteState = "trying";
  #bytes: Uint8Array;
  #intervalE: number;
  #resolve!: (response: SipResponse) => void;
  #reject!: (error: Error) => void;

  constructor(key: string, request: SipRequest, destination: SipAddress, ctx: TransactionContext) {
    super(key, ctx, destination);
    this.request = request;
    this.destination = destination;
    this.#bytes = serializeMessage(request);
    this.#intervalE = ctx.timers.t1;
    this.response = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // Callers that only care about the side effect must not leak an unhandled rejection.
    this.response.catch(() => {});
  }

  get state(): ClientNonInviteState {
    return this.terminated ? "terminated" : this.#state;
  }

  /** Sends the request and arms E (unreliable transports) and F. */
  start(): void {
    this.transmit(this.#bytes, this.destination);
    if (!this.reliable) this.arm("E", this.#intervalE, () => this.#timerE());
    this.arm("F", 64 * this.ctx.timers.t1, () => {
      this.#reject(new TransactionTimeoutError(`No final response to ${this.request.method} (Timer F)`));
      this.terminate("timeout");
    });
  }

  receiveResponse(response: SipResponse): void {
    if (this.state !== "trying" && this.state !== "proceeding") return; // completed absorbs
    if (response.status < 200) {
      this.#state = "proceeding";
      return;
    }
    this.#state = "completed";
    this.disarm("E");
    this.disarm("F");
    this.#resolve(response);
    this.arm("K", this.reliable ? 0 : this.ctx.timers.t4, () => this.terminate());
  }

  protected transportError(): void {
    if (this.state === "completed" || this.terminated) return;
    this.#reject(new TransportError(`Cannot send ${this.request.method} to ${this.destination.hostname}`));
    this.terminate("transport-error");
  }

  #timerE(): void {
    if (this.state === "trying") this.#intervalE = Math.min(2 * this.#intervalE, this.ctx.timers.t2);
    else if (this.state === "proceeding") this.#intervalE = this.ctx.timers.t2;
    else return;
    this.retransmit(this.#bytes, this.destination);
    this.arm("E", this.#intervalE, () => this.#timerE());
  }
}
