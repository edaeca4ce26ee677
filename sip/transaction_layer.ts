/**
 * The transaction layer: matches requests and responses to transactions (RFC 3261
 * sections 17.1.3 and 17.2.3, with the RFC 2543 fallback), creates server
 * transactions for new requests, and hands the transaction user only what is new.
 */
import { type Clock, DEFAULT_TIMERS, realClock, type TimerValues } from "./clock.ts";
import {
  BRANCH_MAGIC_COOKIE,
  branchOf,
  paramValue,
  type SipRequest,
  type SipResponse,
  tagOf,
  type Via,
} from "./message.ts";
import { ClientNonInviteTransaction } from "./transaction_client_non_invite.ts";
import { ServerInviteTransaction } from "./transaction_server_invite.ts";
import { ServerNonInviteTransaction } from "./transaction_server_non_invite.ts";
import type { TransactionContext } from "./transaction.ts";
import { bareHost, defaultPort, isReliable, type SipAddress } from "./transport.ts";

export type ServerTransaction = ServerInviteTransaction | ServerNonInviteTransaction;

/** The layer above: gets each new request once, and ACKs that are not absorbed. */
export interface TransactionUser {
  /** A new request (never a retransmission) with the transaction to answer it on. */
  onRequest(request: SipRequest, transaction: ServerTransaction, source: SipAddress): void;
  /** An ACK for a 2xx (or one matching no transaction), RFC 3261 section 17.2.1 / 13.3.1.4. */
  onAck(ack: SipRequest, source: SipAddress): void;
}

export interface TransactionLayerOptions {
  readonly send: (bytes: Uint8Array, destination: SipAddress) => Promise<void>;
  readonly clock?: Clock;
  readonly timers?: TimerValues;
  /**
   * Each new INVITE (no To-tag) answered with a final status, `ms` after it arrived:
   * for `sip_signaling_invites_total` and `sip_signaling_setup_duration_seconds`.
   */
  readonly onInviteAnswered?: (status: number, ms: number) => void;
}

/** Default port of the sent-by when the Via names none (section 18.2.2). */
const SIP_PORT = 5060;

function sentBy(via: Via): string {
  return `${via.host.toLowerCase()}:${via.port ?? SIP_PORT}`;
}

/**
 * Server transaction key (section 17.2.3). ACK shares the INVITE's key; CANCEL has its
 * own. Without the magic cookie, the RFC 2543 rules: Request-URI, From tag, Call-ID,
 * CSeq number and top Via.
 */
export function serverTransactionKey(request: SipRequest): string {
  const top = request.via[0] as Via;
  const method = request.method === "ACK" ? "INVITE" : request.method;
  const branch = branchOf(top);
  if (branch !== undefined && branch.startsWith(BRANCH_MAGIC_COOKIE)) {
    return `${branch}|${sentBy(top)}|${method}`;
  }
  return [
    "2543",
    request.uri,
    tagOf(request.from) ?? "",
    request.callId,
    request.cseq.seq,
    `${top.transport} ${sentBy(top)} ${branch ?? ""}`,
    method,
  ].join("|");
}

/** Client transaction key: top Via branch and CSeq method (section 17.1.3). */
export function clientTransactionKey(message: SipRequest | SipResponse): string {
  const top = message.via[0] as Via;
  return `${branchOf(top) ?? ""}|${message.cseq.method}`;
}

/**
 * Where a response goes (section 18.2.2, RFC 3581 section 4). A request that came over
 * a stream is answered on its connection; when that has closed, over a new one to the
 * `received` address (or sent-by host) at the sent-by port. Over UDP: maddr if present,
 * else the `received` address (or sent-by host) at the `rport` (or sent-by port).
 */
export function responseDestination(via: Via, source?: SipAddress): SipAddress {
  if (source !== undefined && isReliable(source)) {
    const received = paramValue(via.params, "received");
    const address: SipAddress = {
      hostname: bareHost(received !== undefined && received !== "" ? received : via.host),
      port: via.port ?? defaultPort(source.transport),
      transport: source.transport ?? "TCP",
    };
    return source.connection === undefined ? address : { ...address, connection: source.connection };
  }
  const maddr = paramValue(via.params, "maddr");
  if (maddr !== undefined && maddr !== "") {
    return { hostname: bareHost(maddr), port: via.port ?? SIP_PORT };
  }
  const received = paramValue(via.params, "received");
  const rport = paramValue(via.params, "rport");
  return {
    hostname: bareHost(received !== undefined && received !== "" ? received : via.host),
    port: rport !== undefined && rport !== "" ? Number(rport) : via.port ?? SIP_PORT,
  };
}

export class TransactionLayer {
  readonly #ctx: TransactionContext;
  readonly #server = new Map<string, ServerTransaction>();
  readonly #client = new Map<string, ClientNonInviteTransaction>();
  #user: TransactionUser | undefined;
  /** Requests matched to an existing server transaction (retransmissions absorbed). */
  retransmissionsAbsorbed = 0;

  constructor(options: TransactionLayerOptions) {
    this.#ctx = {
      send: options.send,
      clock: options.clock ?? realClock,
      timers: options.timers ?? DEFAULT_TIMERS,
      stats: { retransmissionsSent: 0 },
      onInviteAnswered: options.onInviteAnswered === undefined ? undefined : (request, status, ms) => {
        if (tagOf(request.to) === undefined) options.onInviteAnswered?.(status, ms);
      },
    };
  }

  /** Requests and responses sent again: by transactions (timers E, G; absorbed retransmissions) and dialogs (2xx until ACK). */
  get retransmissionsSent(): number {
    return this.#ctx.stats.retransmissionsSent;
  }

  /** A dialog sent its 2xx again (section 13.3.1.4). */
  countRetransmission(): void {
    this.#ctx.stats.retransmissionsSent++;
  }

  get timers(): TimerValues {
    return this.#ctx.timers;
  }

  get clock(): Clock {
    return this.#ctx.clock;
  }

  /** Live server and client transactions. */
  get size(): { server: number; client: number } {
    return { server: this.#server.size, client: this.#client.size };
  }

  setUser(user: TransactionUser): void {
    this.#user = user;
  }

  /** A request from the transport, its top Via already stamped (section 18.2.1). */
  receiveRequest(request: SipRequest, source: SipAddress): void {
    const key = serverTransactionKey(request);
    const existing = this.#server.get(key);
    if (request.method === "ACK") {
      if (existing instanceof ServerInviteTransaction && existing.receiveAck()) return;
      this.#user?.onAck(request, source);
      return;
    }
    if (existing !== undefined) {
      this.retransmissionsAbsorbed++;
      existing.receiveRetransmission();
      return;
    }
    const destination = responseDestination(request.via[0] as Via, source);
    const tx = request.method === "INVITE"
      ? new ServerInviteTransaction(key, request, destination, this.#ctx)
      : new ServerNonInviteTransaction(key, request, destination, this.#ctx);
    this.#server.set(key, tx);
    tx.onTerminated(() => {
      if (this.#server.get(key) === tx) this.#server.delete(key);
    });
    this.#user?.onRequest(request, tx, source);
  }

  /** A response from the transport; one that matches no client transaction is dropped. */
  receiveResponse(response: SipResponse): boolean {
    const tx = this.#client.get(clientTransactionKey(response));
    if (tx === undefined) return false;
    tx.receiveResponse(response);
    return true;
  }

  /** The INVITE server transaction a CANCEL targets (section 9.2), if any. */
  findInviteFor(cancel: SipRequest): ServerInviteTransaction | undefined {
    const key = serverTransactionKey({ ...cancel, method: "INVITE" });
    const tx = this.#server.get(key);
    return tx instanceof ServerInviteTransaction ? tx : undefined;
  }

  /** Sends a non-INVITE request in a new client transaction. */
  sendRequest(request: SipRequest, destination: SipAddress): ClientNonInviteTransaction {
    const key = clientTransactionKey(request);
    const tx = new ClientNonInviteTransaction(key, request, destination, this.#ctx);
    this.#client.set(key, tx);
    tx.onTerminated(() => {
      if (this.#client.get(key) === tx) this.#client.delete(key);
    });
    tx.start();
    return tx;
  }

  /** Terminates every transaction (shutdown). */
  close(): void {
    for (const tx of [...this.#server.values(), ...this.#client.values()]) tx.terminate();
  }
}
