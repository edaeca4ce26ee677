/**
 * INVITE server transaction: RFC 3261 section 17.2.1 with the Accepted state of
 * RFC 6026 section 7.1 (2xx retransmissions are the TU's; retransmitted INVITEs and
 * the 2xx ACK do not end the transaction early).
 *
 *   proceeding --1xx--> proceeding
 *   proceeding --2xx--> accepted   (Timer L)
 *   proceeding --3xx-6xx--> completed (Timers G, H)
 *   completed --ACK--> confirmed (Timer I)
 *   accepted --L--> terminated; completed --H--> terminated (timeout); confirmed --I--> terminated
 */
import { buildResponse, randomTag } from "./build.ts";
import type { SipHeader, SipRequest, SipResponse } from "./message.ts";
import { serializeMessage } from "./serialize.ts";
import { compactRequest, Transaction, type TransactionContext } from "./transaction.ts";
import type { SipAddress } from "./transport.ts";

export type ServerInviteState = "proceeding" | "accepted" | "completed" | "confirmed" | "terminated";

export class ServerInviteTransaction extends Transaction {
  readonly kind = "server-invite";
  readonly destination: SipAddress;
  #request: SipRequest;
  #state: ServerInviteState = "proceeding";
  /** The final response as sent, for retransmissions (the parsed one is not kept). */
  #lastBytes: Uint8Array | undefined;
  #intervalG: number;
  readonly #receivedAt: number;
  #onCancelled: (() => void)[] = [];

  constructor(key: string, request: SipRequest, destination: SipAddress, ctx: TransactionContext) {
    super(key, ctx, destination);
    this.#request = request;
    this.destination = destination;
    this.#intervalG = ctx.timers.t1;
    this.#receivedAt = ctx.clock.now();
  }

  get state(): ServerInviteState {
    return this.terminated ? "terminated" : this.#state;
  }

  /** The INVITE; once answered, only what names it (see `compactRequest`). */
  get request(): SipRequest {
    return this.#request;
  }

  /** A response from the TU. 2xx may be sent again in Accepted (TU retransmission). */
  respond(response: SipResponse): void {
    const status = response.status;
    switch (this.state) {
      case "proceeding":
        this.#send(response);
        if (status < 200) return;
        this.ctx.onInviteAnswered?.(this.#request, status, this.ctx.clock.now() - this.#receivedAt);
        this.#request = compactRequest(this.#request);
        // Answered: no CANCEL can act any more, and a listener may hold the whole call
        // (the INVITE, its IncomingCall) for the 32 s the transaction waits.
        this.#onCancelled = [];
        if (status < 300) {
          this.#state = "accepted";
          this.arm("L", 64 * this.ctx.timers.t1, () => this.terminate());
        } else {
          this.#state = "completed";
          if (!this.reliable) this.arm("G", this.#intervalG, () => this.#timerG());
          this.arm("H", 64 * this.ctx.timers.t1, () => this.terminate("timeout"));
        }
        return;
      case "accepted":
        if (status >= 200 && status < 300) this.#send(response);
        return;
      default:
        return; // A final response was already sent; nothing more may be.
    }
  }

  /** Registers a listener for a CANCEL this transaction answered with 487. */
  onCancelled(listener: () => void): void {
    this.#onCancelled.push(listener);
  }

  /**
   * A CANCEL matched this INVITE (section 9.2): still unanswered, it gets 487 and the
   * listeners hear of it once. False when a final response was already sent.
   */
  cancel(headers: readonly SipHeader[] = []): boolean {
    if (this.state !== "proceeding") return false;
    const listeners = this.#onCancelled; // the 487, a final response, drops them
    this.respond(
      buildResponse(this.#request, 487, { toTag: randomTag(), reason: "Request Terminated", headers }),
    );
    for (const listener of listeners) listener();
    return true;
  }

  /** A retransmission of the INVITE arrived. */
  receiveRetransmission(): void {
    if (this.state === "proceeding" || this.state === "completed") this.#resend();
    // accepted: absorbed, the TU retransmits its 2xx itself (RFC 6026 7.1).
  }

  /**
   * An ACK matched this transaction. Returns true when it was absorbed here (ACK for
   * a non-2xx final); false when it belongs to the TU (ACK for a 2xx).
   */
  receiveAck(): boolean {
    switch (this.state) {
      case "completed":
        this.#state = "confirmed";
        this.disarm("G");
        this.disarm("H");
        this.arm("I", this.reliable ? 0 : this.ctx.timers.t4, () => this.terminate());
        return true;
      case "confirmed":
        return true;
      case "accepted":
        return false;
      default:
        return this.state !== "terminated";
    }
  }

  protected transportError(): void {
    this.terminate("transport-error");
  }

  #timerG(): void {
    if (this.state !== "completed") return;
    this.#resend();
    this.#intervalG = Math.min(2 * this.#intervalG, this.ctx.timers.t2);
    this.arm("G", this.#intervalG, () => this.#timerG());
  }

  #send(response: SipResponse): void {
    this.#lastBytes = serializeMessage(response);
    this.transmit(this.#lastBytes, this.destination);
  }

  #resend(): void {
    if (this.#lastBytes !== undefined) this.retransmit(this.#lastBytes, this.destination);
  }
}
