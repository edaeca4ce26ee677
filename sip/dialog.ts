/**
 * UAS dialogs (RFC 3261 section 12) and the call lifecycle around them:
 * - a new INVITE becomes an `IncomingCall` the controller accepts or rejects;
 * - our 2xx is retransmitted at T1 doubling to T2 until ACK; after 64*T1 without ACK
 *   we send BYE and end the call (section 13.3.1.4);
 * - in-dialog BYE -> 200; OPTIONS/INFO -> 200; re-INVITE/UPDATE -> 200 with the
 *   controller's answer (never a second call); unknown dialog -> 481 (12.2.2);
 * - session timers as UAS (RFC 4028): Session-Expires/Min-SE honoured (422 below our
 *   minimum), refreshes answered, expiry ends the call;
 * - we send BYE ourselves in a client transaction, route set honoured (12.2.1.1).
 * Every timer of a dialog is owned by it and cleared in `#end`.
 */
import { buildRequest, buildResponse, reasonPhrase } from "./build.ts";
import type { CancelTimer } from "./clock.ts";
import { formatVia, parseNameAddr, parseUri } from "./grammar.ts";
import { canonicalHeaderName, headerValue, headerValues } from "./headers.ts";
import { paramValue, type SipHeader, type SipRequest, tagOf } from "./message.ts";
import { serializeMessage } from "./serialize.ts";
import type { SipEndpoint } from "./endpoint.ts";
import type { ServerInviteTransaction } from "./transaction_server_invite.ts";
import type { ServerTransaction } from "./transaction_layer.ts";
import { randomTag, type UasHandler } from "./uas_core.ts";
import {
  bareHost,
  defaultPort,
  formatHost,
  isReliable,
  type SipAddress,
  type TransportName,
} from "./transport.ts";

/**
 * Why a call ended, as published in `call.ended`: "normal_clearing" (BYE received),
 * "terminated_by_request" (or the reason TerminateCall gave), "ack_timeout",
 * "session_expired", "max_duration", "drain_timeout".
 */
export type EndReason = string;

export interface DialogOptions {
  /**
   * Address and port for our Contact (the instance that owns the dialog); UDP and TCP
   * share the port, TLS takes the endpoint's TLS port.
   */
  readonly contactHost: string;
  readonly contactPort: number;
  /** Session interval offered when the caller names none, seconds. */
  readonly sessionExpires: number;
  /** Smallest session interval accepted, seconds (Min-SE). */
  readonly minSE: number;
  readonly allow: readonly string[];
  /** Server / User-Agent value; empty: no such header. */
  readonly serverName: string;
  /** A call still up this long after our 200 OK gets BYE (reason "max_duration"); 0 or unset = never. */
  readonly maxCallDurationMs?: number;
}

/** What the layer above (the call orchestrator) decides. */
export interface CallController {
  /** A new call; answer with `call.accept` or `call.reject`, now or later. */
  onIncomingCall(call: IncomingCall): void;
  /** The caller's ACK for our 2xx arrived (once per call). `sdp` is the ACK body, if any. */
  onAnswered(dialog: Dialog, ackBody: Uint8Array): void;
  /** A call that was accepted has ended. */
  onEnded(dialog: Dialog, reason: EndReason): void;
  /** A new offer inside the dialog (re-INVITE/UPDATE); returns the SDP answer, or undefined for 488. */
  answerReoffer(dialog: Dialog, offer: Uint8Array): Uint8Array | undefined;
  /** The caller cancelled a call still being set up. */
  onCancelled(call: IncomingCall): void;
}

export type DialogState = "setup" | "confirmed" | "terminated";

export class IncomingCall {
  readonly request: SipRequest;
  readonly source: SipAddress;
  #manager: DialogManager;
  readonly transaction: ServerInviteTransaction;
  #answered = false;

  constructor(manager: DialogManager, request: SipRequest, tx: ServerInviteTransaction, source: SipAddress) {
    this.#manager = manager;
    this.request = request;
    this.transaction = tx;
    this.source = source;
  }

  get callId(): string {
    return this.request.callId;
  }

  /** True once answered (accepted, rejected, or cancelled by the caller). */
  get answered(): boolean {
    return this.#answered;
  }

  /** Sends 200 OK with `sdp`; returns the dialog, or undefined if the call was already answered. */
  accept(sdp: Uint8Array): Dialog | undefined {
    if (this.#answered) return undefined;
    this.#answered = true;
    return this.#manager.accept(this, sdp);
  }

  /** Sends a final error response; nothing else happens for this Call-ID afterwards. */
  reject(status: number, headers: readonly SipHeader[] = []): void {
    if (this.#answered) return;
    this.#answered = true;
    this.#manager.reject(this, status, headers);
  }

  /** @internal marks the call answered by a CANCEL (487 sent). */
  markCancelled(): void {
    this.#answered = true;
  }
}

export interface SessionTimer {
  readonly interval: number;
  readonly refresher: "uac" | "uas";
}

export class Dialog {
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
  state: DialogState = "setup";
  remoteCSeq: number;
  localCSeq = 0;
  session: SessionTimer | undefined;
  answeredNotified = false;
  /** Free slot for the layer above (call record). */
  data: unknown;
  /** Timers by name: "2xx", "ack-timeout", "session", "max-duration". */
  readonly timers = new Map<string, CancelTimer>();

  constructor(invite: SipRequest, localTag: string, source: SipAddress, contact: string) {
    this.callId = invite.callId;
    this.contact = contact;
    this.localTag = localTag;
    this.remoteTag = tagOf(invite.from) ?? "";
    this.remoteUri = invite.from.uri;
    this.localUri = invite.to.uri;
    const remoteContact = headerValues(invite.headers, "Contact")[0];
    this.remoteTarget = remoteContact === undefined ? invite.from.uri : parseNameAddr(remoteContact).uri;
    this.routeSet = headerValues(invite.headers, "Record-Route");
    this.inviteCSeq = invite.cseq.seq;
    this.source = source;
    this.remoteCSeq = invite.cseq.seq;
  }

  get key(): string {
    return dialogKey(this.callId, this.localTag, this.remoteTag);
  }
}

function dialogKey(callId: string, localTag: string, remoteTag: string): string {
  return `${callId}|${localTag}|${remoteTag}`;
}

/** Parses Session-Expires: delta-seconds *(;refresher=uac|uas) (RFC 4028 section 4). */
function sessionExpiresOf(request: SipRequest): { interval: number; refresher?: "uac" | "uas" } | undefined {
  const value = headerValue(request.headers, "Session-Expires");
  if (value === undefined) return undefined;
  const [delta, ...params] = value.split(";").map((s) => s.trim());
  if (delta === undefined || !/^\d+$/.test(delta)) return undefined;
  const refresher = params.find((p) => p.toLowerCase().startsWith("refresher="))?.split("=")[1]
    ?.toLowerCase();
  return refresher === "uac" || refresher === "uas"
    ? { interval: Number(delta), refresher }
    : { interval: Number(delta) };
}

function supports(request: SipRequest, tag: string): boolean {
  return [...headerValues(request.headers, "Supported"), ...headerValues(request.headers, "Require")]
    .some((t) => t.toLowerCase() === tag);
}

export class DialogManager implements UasHandler {
  readonly #endpoint: SipEndpoint;
  readonly #options: DialogOptions;
  #controller: CallController | undefined;
  readonly #dialogs = new Map<string, Dialog>();
  /** Call-IDs being set up or up: a second INVITE for one never starts a second call. */
  readonly #callIds = new Map<string, IncomingCall | Dialog>();

  constructor(endpoint: SipEndpoint, options: DialogOptions) {
    this.#endpoint = endpoint;
    this.#options = options;
  }

  /** Our Server or User-Agent header, none when the operator configured an empty value. */
  #identity(name: "Server" | "User-Agent"): SipHeader[] {
    return this.#options.serverName === "" ? [] : [{ name, value: this.#options.serverName }];
  }

  setController(controller: CallController): void {
    this.#controller = controller;
  }

  get size(): { dialogs: number; calls: number } {
    return { dialogs: this.#dialogs.size, calls: this.#callIds.size };
  }

  /** The dialog of a Call-ID, if the call is up. */
  findByCallId(callId: string): Dialog | undefined {
    const entry = this.#callIds.get(callId);
    return entry instanceof Dialog ? entry : undefined;
  }

  hasDialog(request: SipRequest): boolean {
    return this.#find(request) !== undefined;
  }

  #find(request: SipRequest): Dialog | undefined {
    return this.#dialogs.get(dialogKey(request.callId, tagOf(request.to) ?? "", tagOf(request.from) ?? ""));
  }

  #respond(tx: ServerTransaction, status: number, headers: readonly SipHeader[] = [], toTag?: string): void {
    tx.respond(
      buildResponse(tx.request, status, {
        toTag: toTag ?? randomTag(),
        reason: reasonPhrase(status),
        headers: [...headers, ...this.#identity("Server")],
      }),
    );
  }

  onRequest(request: SipRequest, tx: ServerTransaction, source: SipAddress): void {
    if (tagOf(request.to) !== undefined) {
      this.#inDialog(request, tx);
      return;
    }
    if (request.method !== "INVITE") {
      // Out-of-dialog BYE, INFO, UPDATE...: no dialog to act on (section 12.2.2).
      this.#respond(tx, 481);
      return;
    }
    const invite = tx as ServerInviteTransaction;
    // Section 8.2.2.2 merged requests; carriers resend with a new branch: never a second call.
    if (this.#callIds.has(request.callId)) {
      this.#respond(invite, 482);
      return;
    }
    // RFC 4028 section 9: a session interval below our minimum gets 422 with Min-SE.
    const se = sessionExpiresOf(request);
    if (se !== undefined && se.interval < this.#options.minSE) {
      this.#respond(invite, 422, [{ name: "Min-SE", value: String(this.#options.minSE) }]);
      return;
    }
    invite.respond(buildResponse(request, 100));
    const call = new IncomingCall(this, request, invite, source);
    this.#callIds.set(request.callId, call);
    // Captures the Call-ID, not the request: the transaction outlives its answer by 32 s.
    const callId = request.callId;
    invite.onTerminated((reason) => {
      // A transport error before we answered: forget the call.
      const entry = this.#callIds.get(callId);
      if (reason === "transport-error" && entry instanceof IncomingCall && entry.transaction === invite) {
        this.#callIds.delete(callId);
      }
    });
    this.#controller?.onIncomingCall(call);
  }

  /** @internal used by IncomingCall.accept */
  accept(call: IncomingCall, sdp: Uint8Array): Dialog | undefined {
    if (this.#callIds.get(call.callId) !== call) return undefined;
    const request = call.request;
    const dialog = new Dialog(request, randomTag(), call.source, this.#contactFor(call.source, request.uri));
    const headers: SipHeader[] = [
      // Section 12.1.1: Record-Route is copied into the 2xx as received.
      ...request.headers.filter((h) => canonicalHeaderName(h.name) === "Record-Route"),
      { name: "Contact", value: dialog.contact },
      { name: "Allow", value: this.#options.allow.join(", ") },
      { name: "Supported", value: "timer" },
      ...this.#sessionHeaders(dialog, request),
      ...this.#identity("Server"),
      { name: "Content-Type", value: "application/sdp" },
    ];
    const ok = buildResponse(request, 200, { toTag: dialog.localTag, headers, body: sdp });
    this.#dialogs.set(dialog.key, dialog);
    this.#callIds.set(call.callId, dialog);
    call.transaction.respond(ok);
    this.#retransmit2xx(dialog, serializeMessage(ok), call.transaction.destination, () => {
      // Section 13.3.1.4: no ACK after 64*T1 -> BYE and end the session.
      this.sendBye(dialog);
      this.#end(dialog, "ack_timeout");
    });
    const maxMs = this.#options.maxCallDurationMs ?? 0;
    if (maxMs > 0) {
      // A call nobody hangs up (a lost BYE, a stuck agent) must not hold its port forever.
      dialog.timers.set(
        "max-duration",
        this.#endpoint.transactions.clock.setTimer(maxMs, () => {
          dialog.timers.delete("max-duration");
          this.terminate(dialog, "max_duration");
        }),
      );
    }
    return dialog;
  }

  /** @internal used by IncomingCall.reject */
  reject(call: IncomingCall, status: number, headers: readonly SipHeader[]): void {
    if (this.#callIds.get(call.callId) === call) this.#callIds.delete(call.callId);
    this.#respond(call.transaction, status, headers);
  }

  /** Session timer negotiation for a 2xx (RFC 4028 section 9). */
  #sessionHeaders(dialog: Dialog, request: SipRequest): SipHeader[] {
    const se = sessionExpiresOf(request);
    if (se === undefined && !supports(request, "timer")) {
      dialog.session = undefined;
      return [];
    }
    const interval = se?.interval ?? this.#options.sessionExpires;
    // We refresh only when asked to; otherwise the caller (UAC) does.
    const refresher = se?.refresher ?? (supports(request, "timer") ? "uac" : "uas");
    dialog.session = { interval, refresher };
    const headers: SipHeader[] = [{ name: "Session-Expires", value: `${interval};refresher=${refresher}` }];
    if (refresher === "uac") headers.push({ name: "Require", value: "timer" });
    return headers;
  }

  #armSessionTimer(dialog: Dialog): void {
    this.#cancel(dialog, "session");
    const session = dialog.session;
    if (session === undefined || dialog.state === "terminated") return;
    const clock = this.#endpoint.transactions.clock;
    if (session.refresher === "uas") {
      // We refresh with UPDATE at half the interval (RFC 4028 section 10).
      dialog.timers.set(
        "session",
        clock.setTimer(session.interval * 500, () => {
          dialog.timers.delete("session");
          this.#sendRequest(dialog, "UPDATE", [
            { name: "Session-Expires", value: `${session.interval};refresher=uas` },
          ]).response.then((r) => {
            if (r.status >= 200 && r.status < 300) this.#armSessionTimer(dialog);
            else this.#expire(dialog);
          }, () => this.#expire(dialog));
        }),
      );
      return;
    }
    // Section 10: without a refresh, BYE at interval - min(32, interval/3).
    const seconds = session.interval - Math.min(32, session.interval / 3);
    dialog.timers.set(
      "session",
      clock.setTimer(seconds * 1000, () => {
        dialog.timers.delete("session");
        this.#expire(dialog);
      }),
    );
  }

  #expire(dialog: Dialog): void {
    if (dialog.state === "terminated") return;
    this.sendBye(dialog);
    this.#end(dialog, "session_expired");
  }

  #retransmit2xx(dialog: Dialog, bytes: Uint8Array, destination: SipAddress, timeout: () => void): void {
    const clock = this.#endpoint.transactions.clock;
    const { t1, t2 } = this.#endpoint.transactions.timers;
    let interval = t1;
    const fire = () => {
      this.#endpoint.transactions.countRetransmission();
      this.#endpoint.send(bytes, destination).catch(() => {});
      interval = Math.min(2 * interval, t2);
      dialog.timers.set("2xx", clock.setTimer(interval, fire));
    };
    dialog.timers.set("2xx", clock.setTimer(interval, fire));
    dialog.timers.set(
      "ack-timeout",
      clock.setTimer(64 * t1, () => {
        this.#cancel(dialog, "2xx");
        dialog.timers.delete("ack-timeout");
        timeout();
      }),
    );
  }

  #cancel(dialog: Dialog, name: string): void {
    dialog.timers.get(name)?.();
    dialog.timers.delete(name);
  }

  onAck(ack: SipRequest): void {
    const dialog = this.#find(ack);
    if (dialog === undefined || dialog.state === "terminated") return; // Stray ACK: dropped (17.2.3).
    this.#cancel(dialog, "2xx");
    this.#cancel(dialog, "ack-timeout");
    if (dialog.state === "setup") {
      dialog.state = "confirmed";
      this.#armSessionTimer(dialog);
    }
    if (!dialog.answeredNotified && ack.cseq.seq === dialog.inviteCSeq) {
      dialog.answeredNotified = true;
      this.#controller?.onAnswered(dialog, ack.body);
    }
  }

  onCancel(_cancel: SipRequest, invite: ServerInviteTransaction): void {
    const entry = this.#callIds.get(invite.request.callId);
    if (!(entry instanceof IncomingCall) || entry.answered) return;
    entry.markCancelled();
    this.#callIds.delete(entry.callId);
    this.#respond(invite, 487);
    this.#controller?.onCancelled(entry);
  }

  #inDialog(request: SipRequest, tx: ServerTransaction): void {
    const dialog = this.#find(request);
    if (dialog === undefined || dialog.state === "terminated") {
      this.#respond(tx, 481);
      return;
    }
    // Section 12.2.2: a lower CSeq than the last one is out of order.
    if (request.cseq.seq < dialog.remoteCSeq && request.method !== "ACK") {
      this.#respond(tx, 500, [], dialog.localTag);
      return;
    }
    dialog.remoteCSeq = Math.max(dialog.remoteCSeq, request.cseq.seq);
    switch (request.method) {
      case "BYE":
        this.#respond(tx, 200, [], dialog.localTag);
        this.#end(dialog, "normal_clearing");
        return;
      case "INVITE":
      case "UPDATE":
        this.#reoffer(dialog, request, tx);
        return;
      default:
        // OPTIONS, INFO (e.g. DTMF) inside the dialog.
        this.#respond(tx, 200, [], dialog.localTag);
    }
  }

  /** re-INVITE or UPDATE: session refresh, hold, or a new offer; same port, no new call. */
  #reoffer(dialog: Dialog, request: SipRequest, tx: ServerTransaction): void {
    const se = sessionExpiresOf(request);
    if (se !== undefined && se.interval < this.#options.minSE) {
      this.#respond(tx, 422, [{ name: "Min-SE", value: String(this.#options.minSE) }], dialog.localTag);
      return;
    }
    let body: Uint8Array | undefined;
    if (request.body.length > 0) {
      body = this.#controller?.answerReoffer(dialog, request.body);
      if (body === undefined) {
        this.#respond(tx, 488, [], dialog.localTag);
        return;
      }
    } else if (request.method === "INVITE") {
      // An offerless re-INVITE gets our current offer (section 14.2).
      body = this.#controller?.answerReoffer(dialog, new Uint8Array(0));
    }
    const headers: SipHeader[] = [
      { name: "Contact", value: dialog.contact },
      ...this.#sessionHeaders(dialog, request),
      ...this.#identity("Server"),
    ];
    if (body !== undefined) headers.push({ name: "Content-Type", value: "application/sdp" });
    const ok = buildResponse(request, 200, {
      toTag: dialog.localTag,
      headers,
      ...(body === undefined ? {} : { body }),
    });
    tx.respond(ok);
    if (dialog.state === "confirmed") this.#armSessionTimer(dialog);
    if (request.method === "INVITE") {
      const invite = tx as ServerInviteTransaction;
      this.#retransmit2xx(dialog, serializeMessage(ok), invite.destination, () => {
        this.sendBye(dialog);
        this.#end(dialog, "ack_timeout");
      });
    }
  }

  /**
   * Our Contact for a dialog set up over `source` (section 12.1.1): the transport named
   * so the far side (or the gateway's record-route) comes back on it; `sips:` when the
   * request was for a `sips:` URI (section 26.2).
   */
  #contactFor(source: SipAddress, requestUri: string): string {
    const host = formatHost(this.#options.contactHost);
    switch (source.transport) {
      case "TCP":
        return `<sip:${host}:${this.#options.contactPort};transport=tcp>`;
      case "TLS": {
        const port = this.#endpoint.transportFor("TLS")?.local.port ?? defaultPort("TLS");
        return requestUri.toLowerCase().startsWith("sips:")
          ? `<sips:${host}:${port}>`
          : `<sip:${host}:${port};transport=tls>`;
      }
      default:
        return `<sip:${host}:${this.#options.contactPort}>`;
    }
  }

  /**
   * Where in-dialog requests go (section 12.2.1.1): to the first Route if any (loose
   * routing), else the remote target, over the transport its URI names (`sips:` is TLS,
   * `;transport=`), or the dialog's own. A dialog set up over a stream sends on its
   * connection while that is up; the transport opens a new one to the hop when not.
   */
  #nextHop(dialog: Dialog): SipAddress {
    const first = dialog.routeSet[0];
    const target = first === undefined ? dialog.remoteTarget : parseNameAddr(first).uri;
    let hop: SipAddress = dialog.source;
    try {
      const uri = parseUri(target);
      const maddr = paramValue(uri.params, "maddr");
      const host = bareHost(maddr !== undefined && maddr !== "" ? maddr : uri.host);
      const named = paramValue(uri.params, "transport")?.toUpperCase();
      const transport: TransportName = uri.scheme === "sips"
        ? "TLS"
        : named === "UDP" || named === "TCP" || named === "TLS"
        ? named
        : dialog.source.transport ?? "UDP";
      if (/^[\d.]+$/.test(host) || host.includes(":")) {
        const port = uri.port ?? defaultPort(transport);
        hop = transport === "UDP" ? { hostname: host, port } : { hostname: host, port, transport };
      }
    } catch {
      // Not a SIP URI we can route on: fall back to where the INVITE came from.
    }
    const connection = dialog.source.connection;
    if (isReliable(hop) && hop.transport === dialog.source.transport && connection !== undefined) {
      return { ...hop, connection };
    }
    return hop;
  }

  #sendRequest(dialog: Dialog, method: string, extra: readonly SipHeader[] = []) {
    dialog.localCSeq = dialog.localCSeq === 0 ? 1 : dialog.localCSeq + 1;
    const hop = this.#nextHop(dialog);
    const protocol = hop.transport ?? "UDP";
    const transport = this.#endpoint.transportFor(protocol) ?? this.#endpoint.transport;
    const port = protocol === "TLS"
      ? transport.local.port
      : this.#options.contactPort || transport.local.port;
    const via = formatVia({
      transport: transport.protocol,
      host: formatHost(this.#options.contactHost),
      port,
      params: [{ name: "branch", value: `z9hG4bK${randomTag()}` }, { name: "rport" }],
    });
    const headers: SipHeader[] = [
      { name: "Via", value: via },
      { name: "Max-Forwards", value: "70" },
      ...dialog.routeSet.map((r) => ({ name: "Route", value: r })),
      { name: "From", value: `<${dialog.localUri}>;tag=${dialog.localTag}` },
      // 12.2.1.1: a null remote tag (an RFC 2543 caller sent none) means no tag parameter.
      {
        name: "To",
        value: `<${dialog.remoteUri}>${dialog.remoteTag === "" ? "" : `;tag=${dialog.remoteTag}`}`,
      },
      { name: "Call-ID", value: dialog.callId },
      { name: "CSeq", value: `${dialog.localCSeq} ${method}` },
      ...extra,
      ...this.#identity("User-Agent"),
    ];
    const request = buildRequest({ method, uri: dialog.remoteTarget, headers });
    return this.#endpoint.transactions.sendRequest(request, hop);
  }

  /** Sends BYE in the dialog (section 15.1.1); resolves with the final status, or undefined on timeout. */
  sendBye(dialog: Dialog): Promise<number | undefined> {
    const tx = this.#sendRequest(dialog, "BYE");
    return tx.response.then((r) => r.status, () => undefined);
  }

  /** Ends a call from our side (TerminateCall): BYE, then the end is reported with `reason`. */
  terminate(dialog: Dialog, reason: EndReason): Promise<number | undefined> {
    if (dialog.state === "terminated") return Promise.resolve(undefined);
    const sent = this.sendBye(dialog);
    this.#end(dialog, reason);
    return sent;
  }

  #end(dialog: Dialog, reason: EndReason): void {
    if (dialog.state === "terminated") return;
    dialog.state = "terminated";
    for (const cancel of dialog.timers.values()) cancel();
    dialog.timers.clear();
    this.#dialogs.delete(dialog.key);
    if (this.#callIds.get(dialog.callId) === dialog) this.#callIds.delete(dialog.callId);
    this.#controller?.onEnded(dialog, reason);
  }

  /** Shutdown: ends every dialog with BYE (best effort). */
  /**
   * Shutdown: calls still being set up get 503 with Retry-After (RFC 3261 section
   * 21.5.4), so the caller retries elsewhere; calls that are up get our BYE.
   */
  closeAll(reason: EndReason, retryAfterSeconds = 5): void {
    for (const entry of [...this.#callIds.values()]) {
      if (entry instanceof IncomingCall && !entry.answered) {
        entry.reject(503, [{ name: "Retry-After", value: String(retryAfterSeconds) }]);
      }
    }
    for (const dialog of [...this.#dialogs.values()]) this.terminate(dialog, reason);
  }
}
