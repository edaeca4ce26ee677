/**
 * The dialog table and the call lifecycle around it (RFC 3261 sections 12-13):
 * - a new INVITE becomes an `IncomingCall` the controller accepts or rejects; its
 *   INVITE server transaction answers a CANCEL with 487 and the controller hears of it
 *   once (section 9.2);
 * - an accepted call becomes a `Dialog` session (`dialog_session.ts`), which owns the
 *   rest of its life; the table finds it for each in-dialog request and forgets it when
 *   it ends;
 * - an in-dialog request for no dialog gets 481 (12.2.2), a second INVITE for a Call-ID
 *   being set up or up gets 482 (8.2.2.2), Session-Expires below Min-SE gets 422.
 * `T` is the layer above's per-call data (`dialog.data`).
 */
import { buildResponse, randomTag, reasonPhrase } from "./build.ts";
import { canonicalHeaderName } from "./headers.ts";
import { type SipHeader, type SipRequest, tagOf } from "./message.ts";
import { serializeMessage } from "./serialize.ts";
import type { SipEndpoint } from "./endpoint.ts";
import type { ServerInviteTransaction } from "./transaction_server_invite.ts";
import type { ServerTransaction } from "./transaction_layer.ts";
import type { UasHandler } from "./uas_core.ts";
import { defaultPort, formatHost, type SipAddress } from "./transport.ts";
import {
  Dialog,
  type DialogContext,
  type DialogEvents,
  dialogKey,
  type DialogOptions,
  type EndReason,
  sessionExpiresOf,
} from "./dialog_session.ts";

/** What the layer above (the call orchestrator) decides and hears, typed by its per-call data `T`. */
export interface CallController<T = unknown> extends DialogEvents<T> {
  /** A new call; answer with `call.accept` or `call.reject`, now or later. */
  onIncomingCall(call: IncomingCall<T>): void;
  /** The caller cancelled a call still being set up (487 already sent). */
  onCancelled(call: IncomingCall<T>): void;
}

export class IncomingCall<T = unknown> {
  readonly request: SipRequest;
  readonly source: SipAddress;
  readonly transaction: ServerInviteTransaction;
  #manager: DialogManager<T>;
  #answered = false;

  constructor(
    manager: DialogManager<T>,
    request: SipRequest,
    tx: ServerInviteTransaction,
    source: SipAddress,
  ) {
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
  accept(sdp: Uint8Array, data?: T): Dialog<T> | undefined {
    if (this.#answered) return undefined;
    this.#answered = true;
    return this.#manager.accept(this, sdp, data);
  }

  /** Sends a final error response; nothing else happens for this Call-ID afterwards. */
  reject(status: number, headers: readonly SipHeader[] = []): void {
    if (this.#answered) return;
    this.#answered = true;
    this.#manager.reject(this, status, headers);
  }

  /** @internal the INVITE transaction answered a CANCEL with 487. */
  markCancelled(): void {
    this.#answered = true;
  }
}

export class DialogManager<T = unknown> implements UasHandler {
  readonly #endpoint: SipEndpoint;
  readonly #options: DialogOptions;
  readonly #context: DialogContext;
  #controller: CallController<T> | undefined;
  readonly #events: DialogEvents<T>;
  readonly #dialogs = new Map<string, Dialog<T>>();
  /** Call-IDs being set up or up: a second INVITE for one never starts a second call. */
  readonly #callIds = new Map<string, IncomingCall<T> | Dialog<T>>();

  constructor(endpoint: SipEndpoint, options: DialogOptions) {
    this.#endpoint = endpoint;
    this.#options = options;
    const transactions = endpoint.transactions;
    this.#context = {
      clock: transactions.clock,
      timers: transactions.timers,
      options,
      resend: (bytes, destination) => {
        transactions.countRetransmission();
        endpoint.send(bytes, destination).catch(() => {});
      },
      sendRequest: (request, hop) => transactions.sendRequest(request, hop),
      localPort: (protocol) => endpoint.transportFor(protocol)?.local.port ?? endpoint.transport.local.port,
    };
    // The dialog's events go to the controller; its end also leaves the table.
    this.#events = {
      onAnswered: (dialog, body) => this.#controller?.onAnswered(dialog, body),
      onEnded: (dialog, reason) => {
        this.#dialogs.delete(dialog.key);
        if (this.#callIds.get(dialog.callId) === dialog) this.#callIds.delete(dialog.callId);
        this.#controller?.onEnded(dialog, reason);
      },
      answerReoffer: (dialog, offer) => this.#controller?.answerReoffer(dialog, offer),
      onInDialogRequest: (dialog, request) => this.#controller?.onInDialogRequest?.(dialog, request),
    };
  }

  setController(controller: CallController<T>): void {
    this.#controller = controller;
  }

  get size(): { dialogs: number; calls: number } {
    return { dialogs: this.#dialogs.size, calls: this.#callIds.size };
  }

  /** The dialog of a Call-ID, if the call is up. */
  findByCallId(callId: string): Dialog<T> | undefined {
    const entry = this.#callIds.get(callId);
    return entry instanceof Dialog ? entry : undefined;
  }

  hasDialog(request: SipRequest): boolean {
    return this.#find(request) !== undefined;
  }

  #find(request: SipRequest): Dialog<T> | undefined {
    return this.#dialogs.get(dialogKey(request.callId, tagOf(request.to) ?? "", tagOf(request.from) ?? ""));
  }

  #identity(): SipHeader[] {
    return this.#options.serverName === "" ? [] : [{ name: "Server", value: this.#options.serverName }];
  }

  #respond(tx: ServerTransaction, status: number, headers: readonly SipHeader[] = []): void {
    tx.respond(
      buildResponse(tx.request, status, {
        toTag: randomTag(),
        reason: reasonPhrase(status),
        headers: [...headers, ...this.#identity()],
      }),
    );
  }

  onRequest(request: SipRequest, tx: ServerTransaction, source: SipAddress): void {
    if (tagOf(request.to) !== undefined) {
      const dialog = this.#find(request);
      if (dialog === undefined) this.#respond(tx, 481);
      else dialog.receiveRequest(request, tx);
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
    const call = new IncomingCall<T>(this, request, invite, source);
    this.#callIds.set(request.callId, call);
    // Captures the Call-ID, not the request: the transaction outlives its answer by 32 s.
    const callId = request.callId;
    invite.onTerminated((reason) => {
      // A transport error before we answered: forget the call. (The listener names the
      // call by its Call-ID and transaction, not the call: it lives as long as the transaction.)
      const entry = this.#callIds.get(callId);
      if (reason === "transport-error" && entry instanceof IncomingCall && entry.transaction === invite) {
        this.#callIds.delete(callId);
      }
    });
    this.#hearCancel(call);
    this.#controller?.onIncomingCall(call);
  }

  /**
   * The INVITE's transaction answered a CANCEL with 487 (section 9.2). Registered from
   * its own function: a closure over `call` beside the one above would share its scope
   * and keep the whole INVITE alive for the transaction's 32 s.
   */
  #hearCancel(call: IncomingCall<T>): void {
    call.transaction.onCancelled(() => {
      if (call.answered) return;
      call.markCancelled();
      if (this.#callIds.get(call.callId) === call) this.#callIds.delete(call.callId);
      this.#controller?.onCancelled(call);
    });
  }

  onAck(ack: SipRequest): void {
    // A stray ACK (no dialog) is dropped (17.2.3).
    this.#find(ack)?.receiveAck(ack);
  }

  /** @internal used by IncomingCall.accept */
  accept(call: IncomingCall<T>, sdp: Uint8Array, data: T | undefined): Dialog<T> | undefined {
    if (this.#callIds.get(call.callId) !== call) return undefined;
    const request = call.request;
    const dialog = new Dialog<T>(
      this.#context,
      this.#events,
      request,
      call.source,
      this.#contactFor(call.source, request.uri),
    );
    dialog.data = data;
    const headers: SipHeader[] = [
      // Section 12.1.1: Record-Route is copied into the 2xx as received.
      ...request.headers.filter((h) => canonicalHeaderName(h.name) === "Record-Route"),
      { name: "Contact", value: dialog.contact },
      { name: "Allow", value: this.#options.allow.join(", ") },
      { name: "Supported", value: "timer" },
      ...dialog.sessionHeaders(request),
      ...this.#identity(),
      { name: "Content-Type", value: "application/sdp" },
    ];
    const ok = buildResponse(request, 200, { toTag: dialog.localTag, headers, body: sdp });
    this.#dialogs.set(dialog.key, dialog);
    this.#callIds.set(call.callId, dialog);
    call.transaction.respond(ok);
    dialog.awaitAck(serializeMessage(ok), call.transaction.destination);
    dialog.limitDuration(this.#options.maxCallDurationMs ?? 0);
    return dialog;
  }

  /** @internal used by IncomingCall.reject */
  reject(call: IncomingCall<T>, status: number, headers: readonly SipHeader[]): void {
    if (this.#callIds.get(call.callId) === call) this.#callIds.delete(call.callId);
    this.#respond(call.transaction, status, headers);
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

  /** Ends a call from our side (TerminateCall): BYE, then the end is reported with `reason`. */
  terminate(dialog: Dialog<T>, reason: EndReason): Promise<number | undefined> {
    return dialog.terminate(reason);
  }

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
    for (const dialog of [...this.#dialogs.values()]) dialog.terminate(reason);
  }
}

export { Dialog } from "./dialog_session.ts";
export type { DialogOptions, DialogState, EndReason, SessionTimer } from "./dialog_session.ts";
