/**
 * Non-INVITE server transaction, RFC 3261 section 17.2.2.
 *
 *   trying --1xx--> proceeding --1xx--> proceeding
 *   trying|proceeding --final--> completed (Timer J) --J--> terminated
 */
import type { SipRequest, SipResponse } from "./message.ts";
import { serializeMessage } from "./serialize.ts";
import { Transaction, type TransactionContext } from "./transaction.ts";
import type { SipAddress } from "./transport.ts";

export type ServerNonInviteState = "trying" | "proceeding" | "completed" | "terminated";

export class ServerNonInviteTransaction extends Transaction {
  readonly kind = "server-non-invite";
  readonly request: SipRequest;
  readonly destination: SipAddress;
  #state: ServerNonInviteState = "trying";
  #lastResponse: SipResponse | undefined;
  #lastBytes: Uint8Array | undefined;

  constructor(key: string, request: SipRequest, destination: SipAddress, ctx: TransactionContext) {
    super(key, ctx);
    this.request = request;
    this.destination = destination;
  }

  get state(): ServerNonInviteState {
    return this.terminated ? "terminated" : this.#state;
  }

  get lastResponse(): SipResponse | undefined {
    return this.#lastResponse;
  }

  respond(response: SipResponse): void {
    if (this.state !== "trying" && this.state !== "proceeding") return;
    this.#lastResponse = response;
    this.#lastBytes = serializeMessage(response);
    this.transmit(this.#lastBytes, this.destination);
    if (response.status < 200) {
      this.#state = "proceeding";
      return;
    }
    this.#state = "completed";
    this.arm("J", this.ctx.reliable ? 0 : 64 * this.ctx.timers.t1, () => this.terminate());
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
