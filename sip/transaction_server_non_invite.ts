/**
 * Non-INVITE server transaction, RFC 3261 section 17.2.2.
 *
 *   trying --1xx--> proceeding --1xx--> proceeding
 *   trying|proceeding --final--> completed (Timer J) --J--> terminated
 */
import type { SipRequest, SipResponse } from "./message.ts";
import { serializeMessage } from "./serialize.ts";
import { compactRequest, Transaction, type TransactionContext } from "./transaction.ts";
import type { SipAddress } from "./transport.ts";

export type ServerNonInviteState = "trying" | "proceeding" | "completed" | "terminated";

export class ServerNonInviteTransaction extends Transaction {
  readonly kind = "server-non-invite";
  readonly destination: SipAddress;
  #request: SipRequest;
  #state: ServerNonInviteState = "trying";
  /** The last response as sent, for retransmissions (the parsed one is not kept). */
  #lastBytes: Uint8Array | undefined;

  constructor(key: string, request: SipRequest, destination: SipAddress, ctx: TransactionContext) {
    super(key, ctx, destination);
    this.#request = request;
    this.destination = destination;
  }

  get state(): ServerNonInviteState {
    return this.terminated ? "terminated" : this.#state;
  }

  /** The request; once answered, only what names it (see `compactRequest`). */
  get request(): SipRequest {
    return this.#request;
  }

  respond(response: SipResponse): void {
    if (this.state !== "trying" && this.state !== "proceeding") return;
    this.#lastBytes = serializeMessage(response);
    this.transmit(this.#lastBytes, this.destination);
    if (response.status < 200) {
      this.#state = "proceeding";
      return;
    }
    this.#state = "completed";
    this.#request = compactRequest(this.#request);
    this.arm("J", this.reliable ? 0 : 64 * this.ctx.timers.t1, () => this.terminate());
  }

  /** A retransmission of the request: absorbed in trying, answered again after. */
  receiveRetransmission(): void {
    if ((this.state === "proceeding" || this.state === "completed") && this.#lastBytes !== undefined) {
      this.retransmit(this.#lastBytes, this.destination);
    }
  }

  protected transportError(): void {
    this.terminate("transport-error");
  }
}
