/**
 * One UAS dialog as a session (RFC 3261 section 12) that owns its state, its timers
 * (released in `#end`, the one place it ends) and the requests it sends:
 * - our 2xx is resent at T1 doubling to T2 until the ACK; after 64*T1 without one we
 *   send BYE and end the call (section 13.3.1.4), on every transport;
 * - in-dialog BYE -> 200 and the end; re-INVITE/UPDATE -> 200 with the layer above's
 *   answer (never a second call); OPTIONS, INFO, NOTIFY -> 200, INFO and NOTIFY shown to
 *   the layer above first;
 * - session timers as UAS (RFC 4028): Session-Expires/Min-SE honoured (422 below our
 *   minimum), refreshes answered, expiry ends the call; as refresher we send UPDATE;
 * - requests we send (BYE, UPDATE, REFER) go through the route set (12.2.1.1) in client
 *   transactions, on the dialog's connection while it is up.
 * It is built on a narrow `DialogContext`, not the whole endpoint.
 */
import { buildRequest, buildResponse, randomTag, reasonPhrase } from "./build.ts";
import type { CancelTimer } from "./clock.ts";
import { formatVia, parseNameAddr, parseUri } from "./grammar.ts";
import { headerValues } from "./headers.ts";
import { paramValue, type SipHeader, type SipRequest, tagOf } from "./message.ts";
import { serializeMessage } from "./serialize.ts";
import type { ClientNonInviteTransaction } from "./transaction_client_non_invite.ts";
import type { ServerTransaction } from "./transaction_layer.ts";
import {
  bareHost,
  defaultPort,
  formatHost,
  isReliable,
  type SipAddress,
  type TransportName,
} from "./transport.ts";

export type {
  DialogContext,
  DialogEvents,
  DialogOptions,
  DialogState,
  EndReason,
  SessionTimer,
} from "./dialog_types.ts";
export { dialogKey, sessionExpiresOf } from "./dialog_types.ts";
import {
  type DialogContext,
  type DialogEvents,
  dialogKey,
  type DialogState,
  type EndReason,
  sessionExpiresOf,
  type SessionTimer,
  supports,
} from "./dialog_types.ts";

export class Dialog<T = unknown> {
  readonly callId: string;
  readonly localTag: string;
  readonly remoteTag: string;
  /** From of the INVITE (the caller) and To (us), as written. */
  readonly remoteUri: string;
  readonly localUri: string;
  readonly remoteTarget: string;
  /** Record-Route values in order (UAS route set, section 12.1.1). */
  readonly routeSet: readonly string[];
  /** The INVITE's CSeq number (the ACK for our 2xx carries it, section 13.2.2.4). */
  readonly inviteCSeq: number;
  /** Where the INVITE came from: its transport and, over a stream, its connection. */
  readonly source: SipAddress;
  /** Our Contact value in this dialog (section 12.1.1), with the transport it was set up on. */
  readonly contact: string;
  /** The layer above's data for this call. */
  data: T | undefined;
  #state: DialogState = "setup";
  #remoteCSeq: number;
  #localCSeq = 0;
  #session: SessionTimer | undefined;
  #answeredNotified = false;
  /** Timers by name: "2xx", "ack-timeout", "session", "max-duration", and the layer above's. */
  readonly #timers = new Map<string, CancelTimer>();
  readonly #ctx: DialogContext;
  readonly #events: DialogEvents<T>;

  constructor(
    ctx: DialogContext,
    events: DialogEvents<T>,
    invite: SipRequest,
    source: SipAddress,
    contact: string,
  ) {
    this.#ctx = ctx;
    this.#events = events;
    this.callId = invite.callId;
    this.localTag = randomTag();
    this.remoteTag = tagOf(invite.from) ?? "";
    this.remoteUri = invite.from.uri;
    this.localUri = invite.to.uri;
    const remoteContact = headerValues(invite.headers, "Contact")[0];
    this.remoteTarget = remoteContact === undefined ? invite.from.uri : parseNameAddr(remoteContact).uri;
    this.routeSet = headerValues(invite.headers, "Record-Route");
    this.inviteCSeq = invite.cseq.seq;
    this.source = source;
    this.contact = contact;
    this.#remoteCSeq = invite.cseq.seq;
  }

  get key(): string {
    return dialogKey(this.callId, this.localTag, this.remoteTag);
  }

  get state(): DialogState {
    return this.#state;
  }

  /** The negotiated session timer, if any (RFC 4028). */
  get session(): SessionTimer | undefined {
    return this.#session;
  }

  /** Names of the timers armed now (for tests and diagnostics). */
  get armedTimers(): string[] {
    return [...this.#timers.keys()].sort();
  }

  /** Our Server or User-Agent header, none when the operator configured an empty value. */
  identity(name: "Server" | "User-Agent"): SipHeader[] {
    const value = this.#ctx.options.serverName;
    return value === "" ? [] : [{ name, value }];
  }

  /** Arms a timer the dialog owns: cancelled when it ends. Re-arming a name replaces it. */
  setTimer(name: string, ms: number, fire: () => void): void {
    this.cancelTimer(name);
    this.#timers.set(
      name,
      this.#ctx.clock.setTimer(ms, () => {
        this.#timers.delete(name);
        fire();
      }),
    );
  }

  cancelTimer(name: string): void {
    this.#timers.get(name)?.();
    this.#timers.delete(name);
  }

  /**
   * Session timer negotiation for a 2xx (RFC 4028 section 9): the headers our answer to
   * `request` carries.
   */
  sessionHeaders(request: SipRequest): SipHeader[] {
    const se = sessionExpiresOf(request);
    if (se === undefined && !supports(request, "timer")) {
      this.#session = undefined;
      return [];
    }
    const interval = se?.interval ?? this.#ctx.options.sessionExpires;
    // We refresh only when asked to; otherwise the caller (UAC) does.
    const refresher = se?.refresher ?? (supports(request, "timer") ? "uac" : "uas");
    this.#session = { interval, refresher };
    const headers: SipHeader[] = [{ name: "Session-Expires", value: `${interval};refresher=${refresher}` }];
    if (refresher === "uac") headers.push({ name: "Require", value: "timer" });
    return headers;
  }

  /**
   * Our 2xx to an INVITE (the first or a re-INVITE) has been sent as `bytes`: resent
   * at T1 doubling to T2 until the ACK; 64*T1 without one ends the call (13.3.1.4).
   */
  awaitAck(bytes: Uint8Array, destination: SipAddress): void {
    const { t1, t2 } = this.#ctx.timers;
    let interval = t1;
    const fire = () => {
      this.#ctx.resend(bytes, destination);
      interval = Math.min(2 * interval, t2);
      this.setTimer("2xx", interval, fire);
    };
    this.setTimer("2xx", interval, fire);
    this.setTimer("ack-timeout", 64 * t1, () => {
      this.cancelTimer("2xx");
      this.bye();
      this.#end("ack_timeout");
    });
  }

  /** A call nobody hangs up (a lost BYE, a stuck agent) must not hold its port forever. */
  limitDuration(ms: number): void {
    if (ms > 0) this.setTimer("max-duration", ms, () => this.terminate("max_duration"));
  }

  /** An ACK for our 2xx (section 13.3.1.4): the retransmissions stop; the first confirms the call. */
  receiveAck(ack: SipRequest): void {
    if (this.#state === "terminated") return;
    this.cancelTimer("2xx");
    this.cancelTimer("ack-timeout");
    if (this.#state === "setup") {
      this.#state = "confirmed";
      this.#armSessionTimer();
    }
    if (!this.#answeredNotified && ack.cseq.seq === this.inviteCSeq) {
      this.#answeredNotified = true;
      this.#events.onAnswered(this, ack.body);
    }
  }

  /** A request inside this dialog (section 12.2.2), other than ACK. */
  receiveRequest(request: SipRequest, tx: ServerTransaction): void {
    if (this.#state === "terminated") {
      this.#respond(tx, 481);
      return;
    }
    // Section 12.2.2: a lower CSeq than the last one is out of order.
    if (request.cseq.seq < this.#remoteCSeq) {
      this.#respond(tx, 500);
      return;
    }
    this.#remoteCSeq = Math.max(this.#remoteCSeq, request.cseq.seq);
    switch (request.method) {
      case "BYE":
        this.#respond(tx, 200);
        this.#end("normal_clearing");
        return;
      case "INVITE":
      case "UPDATE":
        this.#reoffer(request, tx);
        return;
      case "INFO":
      case "NOTIFY":
        this.#respond(tx, this.#events.onInDialogRequest?.(this, request) ?? 200);
        return;
      default:
        // OPTIONS inside the dialog.
        this.#respond(tx, 200);
    }
  }

  #respond(tx: ServerTransaction, status: number, headers: readonly SipHeader[] = []): void {
    tx.respond(
      buildResponse(tx.request, status, {
        toTag: this.localTag,
        reason: reasonPhrase(status),
        headers: [...headers, ...this.identity("Server")],
      }),
    );
  }

  /** re-INVITE or UPDATE: session refresh, hold, or a new offer; same port, no new call. */
  #reoffer(request: SipRequest, tx: ServerTransaction): void {
    const se = sessionExpiresOf(request);
    if (se !== undefined && se.interval < this.#ctx.options.minSE) {
      this.#respond(tx, 422, [{ name: "Min-SE", value: String(this.#ctx.options.minSE) }]);
      return;
    }
    let body: Uint8Array | undefined;
    if (request.body.length > 0) {
      body = this.#events.answerReoffer(this, request.body);
      if (body === undefined) {
        this.#respond(tx, 488);
        return;
      }
    } else if (request.method === "INVITE") {
      // An offerless re-INVITE gets our current offer (section 14.2).
      body = this.#events.answerReoffer(this, new Uint8Array(0));
    }
    const headers: SipHeader[] = [
      { name: "Contact", value: this.contact },
      ...this.sessionHeaders(request),
      ...this.identity("Server"),
    ];
    if (body !== undefined) headers.push({ name: "Content-Type", value: "application/sdp" });
    const ok = buildResponse(request, 200, {
      toTag: this.localTag,
      headers,
      ...(body === undefined ? {} : { body }),
    });
    tx.respond(ok);
    if (this.#state === "confirmed") this.#armSessionTimer();
    if (tx.kind === "server-invite") this.awaitAck(serializeMessage(ok), tx.destination);
  }

  #armSessionTimer(): void {
    this.cancelTimer("session");
    const session = this.#session;
    if (session === undefined || this.#state === "terminated") return;
    if (session.refresher === "uas") {
      // We refresh with UPDATE at half the interval (RFC 4028 section 10).
      this.setTimer("session", session.interval * 500, () => {
        this.sendRequest("UPDATE", [{ name: "Session-Expires", value: `${session.interval};refresher=uas` }])
          .response.then((r) => {
            if (r.status >= 200 && r.status < 300) this.#armSessionTimer();
            else this.#expire();
          }, () => this.#expire());
      });
      return;
    }
    // Section 10: without a refresh, BYE at interval - min(32, interval/3).
    const seconds = session.interval - Math.min(32, session.interval / 3);
    this.setTimer("session", seconds * 1000, () => this.#expire());
  }

  #expire(): void {
    if (this.#state === "terminated") return;
    this.bye();
    this.#end("session_expired");
  }

  /**
   * Where our requests go (section 12.2.1.1): to the first Route if any (loose routing),
   * else the remote target, over the transport its URI names (`sips:` is TLS,
   * `;transport=`), or the dialog's own. A dialog set up over a stream sends on its
   * connection while that is up; the transport opens a new one to the hop when not.
   */
  nextHop(): SipAddress {
    const first = this.routeSet[0];
    const target = first === undefined ? this.remoteTarget : parseNameAddr(first).uri;
    let hop: SipAddress = this.source;
    try {
      const uri = parseUri(target);
      const maddr = paramValue(uri.params, "maddr");
      const host = bareHost(maddr !== undefined && maddr !== "" ? maddr : uri.host);
      const named = paramValue(uri.params, "transport")?.toUpperCase();
      const transport: TransportName = uri.scheme === "sips"
        ? "TLS"
        : named === "UDP" || named === "TCP" || named === "TLS"
        ? named
        : this.source.transport ?? "UDP";
      if (/^[\d.]+$/.test(host) || host.includes(":")) {
        const port = uri.port ?? defaultPort(transport);
        hop = transport === "UDP" ? { hostname: host, port } : { hostname: host, port, transport };
      }
    } catch {
      // Not a SIP URI we can route on: fall back to where the INVITE came from.
    }
    const connection = this.source.connection;
    if (isReliable(hop) && hop.transport === this.source.transport && connection !== undefined) {
      return { ...hop, connection };
    }
    return hop;
  }

  /** Sends `method` in this dialog (section 12.2.1.1) in a client transaction. */
  sendRequest(
    method: string,
    extra: readonly SipHeader[] = [],
    body?: Uint8Array,
  ): ClientNonInviteTransaction {
    this.#localCSeq = this.#localCSeq === 0 ? 1 : this.#localCSeq + 1;
    const hop = this.nextHop();
    const protocol = hop.transport ?? "UDP";
    const options = this.#ctx.options;
    const port = protocol === "TLS"
      ? this.#ctx.localPort("TLS")
      : options.contactPort || this.#ctx.localPort(protocol);
    const via = formatVia({
      transport: protocol,
      host: formatHost(options.contactHost),
      port,
      params: [{ name: "branch", value: `z9hG4bK${randomTag()}` }, { name: "rport" }],
    });
    const headers: SipHeader[] = [
      { name: "Via", value: via },
      { name: "Max-Forwards", value: "70" },
      ...this.routeSet.map((r) => ({ name: "Route", value: r })),
      { name: "From", value: `<${this.localUri}>;tag=${this.localTag}` },
      // 12.2.1.1: a null remote tag (an RFC 2543 caller sent none) means no tag parameter.
      { name: "To", value: `<${this.remoteUri}>${this.remoteTag === "" ? "" : `;tag=${this.remoteTag}`}` },
      { name: "Call-ID", value: this.callId },
      { name: "CSeq", value: `${this.#localCSeq} ${method}` },
      ...extra,
      ...this.identity("User-Agent"),
    ];
    const request = buildRequest({
      method,
      uri: this.remoteTarget,
      headers,
      ...(body === undefined ? {} : { body }),
    });
    return this.#ctx.sendRequest(request, hop);
  }

  /** Sends BYE (section 15.1.1); resolves with the final status, or undefined on timeout. */
  bye(): Promise<number | undefined> {
    return this.sendRequest("BYE").response.then((r) => r.status, () => undefined);
  }

  /** Ends the call from our side: BYE, then the end is reported with `reason`. */
  terminate(reason: EndReason): Promise<number | undefined> {
    if (this.#state === "terminated") return Promise.resolve(undefined);
    const sent = this.bye();
    this.#end(reason);
    return sent;
  }

  /** Ends the dialog without a BYE (the far side sent one, or it is gone): timers released, listeners told once. */
  end(reason: EndReason): void {
    this.#end(reason);
  }

  #end(reason: EndReason): void {
    if (this.#state === "terminated") return;
    this.#state = "terminated";
    for (const cancel of this.#timers.values()) cancel();
    this.#timers.clear();
    this.#events.onEnded(this, reason);
  }
}
