/**
 * The UAS core (RFC 3261 section 8.2): the checks every request passes before the
 * application sees it, and the answers the stack gives on its own:
 *   Max-Forwards 0 -> 483; unknown method -> 501, known but not allowed -> 405 with
 *   Allow (8.2.1); Require with an unsupported extension -> 420 with Unsupported
 *   (8.2.2.3); CANCEL matching no transaction -> 481, else 200 and the INVITE's
 *   transaction answers 487 (9.2); OPTIONS outside a
 *   dialog -> 200 with Allow, Accept, Supported (11.2).
 */
import { buildResponse, randomTag, reasonPhrase } from "./build.ts";
import { headerValues } from "./headers.ts";
import { type SipHeader, type SipRequest, tagOf } from "./message.ts";
import type { ServerTransaction, TransactionLayer, TransactionUser } from "./transaction_layer.ts";
import type { SipAddress } from "./transport.ts";

/** What the application (the dialog layer) gets once the core's checks pass. */
export interface UasHandler {
  onRequest(request: SipRequest, transaction: ServerTransaction, source: SipAddress): void;
  /** ACK for a 2xx, to the dialog (section 13.3.1.4). */
  onAck(ack: SipRequest, source: SipAddress): void;
  /** True when an OPTIONS with a To-tag belongs to a dialog the handler owns. */
  hasDialog?(request: SipRequest): boolean;
}

export interface UasCoreOptions {
  /** Methods served; Allow lists them. */
  readonly allow: readonly string[];
  /** Option tags supported (Supported header, Require check). */
  readonly supported: readonly string[];
  /** Body types accepted. */
  readonly accept: readonly string[];
  /** Server header value; empty: none. */
  readonly serverName: string;
  /**
   * False while the instance takes no new calls (draining, not ready): OPTIONS outside
   * a dialog is answered 503, so the gateway's dispatcher probing takes it out of
   * rotation. Default: always true.
   */
  readonly accepting?: () => boolean;
}

/** Methods defined by RFC 3261 and its common extensions: 405, not 501, when not served. */
const KNOWN_METHODS = new Set([
  "INVITE",
  "ACK",
  "BYE",
  "CANCEL",
  "OPTIONS",
  "REGISTER",
  "PRACK",
  "SUBSCRIBE",
  "NOTIFY",
  "PUBLISH",
  "INFO",
  "REFER",
  "MESSAGE",
  "UPDATE",
]);

export class UasCore implements TransactionUser {
  readonly #layer: TransactionLayer;
  readonly #handler: UasHandler;
  readonly #options: UasCoreOptions;
  readonly #allowHeader: SipHeader;
  readonly #serverHeader: SipHeader[];

  constructor(layer: TransactionLayer, handler: UasHandler, options: UasCoreOptions) {
    this.#layer = layer;
    this.#handler = handler;
    this.#options = options;
    this.#allowHeader = { name: "Allow", value: options.allow.join(", ") };
    this.#serverHeader = options.serverName === "" ? [] : [{ name: "Server", value: options.serverName }];
  }

  /** Answers `request` on `tx` with a new To-tag when needed. */
  respond(tx: ServerTransaction, status: number, headers: readonly SipHeader[] = [], reason?: string): void {
    tx.respond(
      buildResponse(tx.request, status, {
        toTag: randomTag(),
        reason: reason ?? reasonPhrase(status),
        headers: [...headers, ...this.#serverHeader],
      }),
    );
  }

  onRequest(request: SipRequest, tx: ServerTransaction, source: SipAddress): void {
    const method = request.method;
    if (request.maxForwards === 0) {
      this.respond(tx, 483);
      return;
    }
    if (!this.#options.allow.includes(method)) {
      this.respond(tx, KNOWN_METHODS.has(method) ? 405 : 501, [this.#allowHeader]);
      return;
    }
    if (method !== "CANCEL") {
      const unsupported = headerValues(request.headers, "Require")
        .filter((tag) => tag !== "" && !this.#options.supported.includes(tag.toLowerCase()));
      if (unsupported.length > 0) {
        this.respond(tx, 420, [{ name: "Unsupported", value: unsupported.join(", ") }]);
        return;
      }
    }
    if (method === "CANCEL") {
      const invite = this.#layer.findInviteFor(request);
      if (invite === undefined || invite.terminated) {
        this.respond(tx, 481);
        return;
      }
      // Section 9.2: the CANCEL gets 200 whenever its INVITE's transaction exists; an
      // INVITE still unanswered then gets 487, one already answered is left as it is.
      this.respond(tx, 200);
      invite.cancel(this.#serverHeader);
      return;
    }
    if (
      method === "OPTIONS" &&
      (tagOf(request.to) === undefined || !(this.#handler.hasDialog?.(request) ?? false))
    ) {
      if (this.#options.accepting?.() === false) {
        this.respond(tx, 503, [{ name: "Retry-After", value: "5" }]);
        return;
      }
      this.respond(tx, 200, [
        this.#allowHeader,
        { name: "Accept", value: this.#options.accept.join(", ") },
        { name: "Supported", value: this.#options.supported.join(", ") },
      ]);
      return;
    }
    this.#handler.onRequest(request, tx, source);
  }

  onAck(ack: SipRequest, source: SipAddress): void {
    this.#handler.onAck(ack, source);
  }
}
