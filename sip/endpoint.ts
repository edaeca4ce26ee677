/**
 * The SIP endpoint: reads datagrams from a transport, parses them, stamps the top
 * Via of requests (RFC 3261 section 18.2.1, RFC 3581), and feeds the transaction
 * layer. Bad input is counted and logged (rate-limited) and never stops the loop; a
 * request whose mandatory headers are broken gets `400` naming the header when the
 * response can be routed.
 */
import { getLogger } from "@logtape/logtape";
import type { Clock, TimerValues } from "./clock.ts";
import { SipParseError } from "./errors.ts";
import { formatVia, parseVia } from "./grammar.ts";
import { canonicalHeaderName, headerValue, splitHeaderList } from "./headers.ts";
import { type Param, paramValue, type SipMessage, type SipRequest, type Via } from "./message.ts";
import { interpretFrame, isKeepAlive, parseFrame, type ParseLimits, type SipFrame } from "./parse.ts";
import { replaceTopVia } from "./build.ts";
import { responseDestination, TransactionLayer, type TransactionUser } from "./transaction_layer.ts";
import {
  bareHost,
  type Datagram,
  type SipAddress,
  type SipTransport,
  type TransportName,
} from "./transport.ts";
import type { SourceAllowlist } from "./source_allowlist.ts";

const log = getLogger(["sip", "endpoint"]);

export interface EndpointOptions {
  readonly clock?: Clock;
  readonly timers?: TimerValues;
  readonly limits?: ParseLimits;
  /** Most log lines per second for each kind of drop; the rest are counted. Default 5. */
  readonly parseErrorLogsPerSecond?: number;
  /**
   * Sources that may send us SIP; datagrams from any other are dropped unanswered and
   * unparsed. Unset: every source.
   */
  readonly allowedSources?: SourceAllowlist;
  /** Each new INVITE answered with a final status, `ms` after it arrived (metrics). */
  readonly onInviteAnswered?: (status: number, ms: number) => void;
}

/** Why a datagram was dropped: the `reason` label of `sip_signaling_datagrams_dropped_total`. */
export type DropReason = "parse_error" | "not_allowed" | "oversize";

/** Counters an operator reads from /metrics. */
export interface EndpointCounters {
  datagramsReceived: number;
  keepAlives: number;
  requestsReceived: number;
  responsesReceived: number;
  parseErrors: number;
  badRequestsAnswered: number;
  strayResponses: number;
  sendErrors: number;
  handlerErrors: number;
  /** Datagrams dropped without a transaction, by reason (a parse error answered 400 counts too). */
  readonly dropped: Record<DropReason, number>;
}

/**
 * At most `perSecond` log lines a second for one kind of event; the rest are counted
 * and the count goes with the next line that is let through.
 */
export class LogRateLimit {
  readonly #perSecond: number;
  #windowStart = Number.NEGATIVE_INFINITY;
  #inWindow = 0;
  #suppressed = 0;
  constructor(perSecond: number) {
    this.#perSecond = perSecond;
  }

  /** Undefined when this line is to be suppressed; else how many were suppressed since the last. */
  take(now: number = performance.now()): number | undefined {
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now;
      this.#inWindow = 0;
    }
    if (this.#inWindow >= this.#perSecond) {
      this.#suppressed++;
      return undefined;
    }
    this.#inWindow++;
    const suppressed = this.#suppressed;
    this.#suppressed = 0;
    return suppressed;
  }
}

/** RFC 3581 / 18.2.1: `received` when the source differs from sent-by, `rport` filled in. */
export function stampVia(via: Via, source: SipAddress): Via {
  const hasRport = paramValue(via.params, "rport") !== undefined;
  const needsReceived = hasRport || bareHost(via.host).toLowerCase() !== source.hostname.toLowerCase();
  if (!needsReceived) return via;
  const params: Param[] = via.params.filter((p) => {
    const n = p.name.toLowerCase();
    return n !== "received" && !(hasRport && n === "rport");
  });
  params.push({ name: "received", value: source.hostname });
  if (hasRport) params.push({ name: "rport", value: String(source.port) });
  return { ...via, params };
}

function withoutControls(value: string): string {
  // deno-lint-ignore no-control-regex
  return value.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, "");
}

export class SipEndpoint implements AsyncDisposable {
  /** The first transport given (UDP in the service). */
  readonly transport: SipTransport;
  readonly #transports = new Map<TransportName, SipTransport>();
  readonly transactions: TransactionLayer;
  readonly counters: EndpointCounters = {
    datagramsReceived: 0,
    keepAlives: 0,
    requestsReceived: 0,
    responsesReceived: 0,
    parseErrors: 0,
    badRequestsAnswered: 0,
    strayResponses: 0,
    sendErrors: 0,
    handlerErrors: 0,
    dropped: { parse_error: 0, not_allowed: 0, oversize: 0 },
  };
  readonly #limits: ParseLimits;
  readonly #allowed: SourceAllowlist | undefined;
  readonly #parseErrorLog: LogRateLimit;
  readonly #notAllowedLog: LogRateLimit;
  #loop: Promise<void> | undefined;
  #closed = false;

  /** `transports`: one per protocol; the first is `transport`. */
  constructor(transports: SipTransport | readonly SipTransport[], options: EndpointOptions = {}) {
    const list = Array.isArray(transports) ? transports : [transports as SipTransport];
    if (list.length === 0) throw new Error("SipEndpoint needs a transport");
    this.transport = list[0]!;
    for (const t of list) this.#transports.set(t.protocol, t);
    this.#limits = options.limits ?? {};
    this.#allowed = options.allowedSources;
    this.#parseErrorLog = new LogRateLimit(options.parseErrorLogsPerSecond ?? 5);
    this.#notAllowedLog = new LogRateLimit(options.parseErrorLogsPerSecond ?? 5);
    this.transactions = new TransactionLayer({
      send: (bytes, destination) => this.send(bytes, destination),
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      ...(options.timers === undefined ? {} : { timers: options.timers }),
      ...(options.onInviteAnswered === undefined ? {} : { onInviteAnswered: options.onInviteAnswered }),
    });
  }

  /** True while the transport is open and read. */
  get listening(): boolean {
    return this.#loop !== undefined && !this.#closed;
  }

  /** The transport of a protocol, if we speak it. */
  transportFor(protocol: TransportName): SipTransport | undefined {
    return this.#transports.get(protocol);
  }

  /** Every transport, UDP first. */
  get transports(): SipTransport[] {
    return [...this.#transports.values()];
  }

  /** Starts every transport's receive loop, delivering to `user`. */
  start(user: TransactionUser): void {
    if (this.#loop !== undefined) throw new Error("SipEndpoint already started");
    this.transactions.setUser(user);
    const deliver = (message: Datagram) => this.#deliver(message);
    this.#loop = Promise.all(this.transports.map((t) => t.serve(deliver))).then(() => {});
  }

  /** Sends bytes over the destination's transport; counts and rethrows failures. */
  async send(bytes: Uint8Array, destination: SipAddress): Promise<void> {
    try {
      const transport = this.#transports.get(destination.transport ?? "UDP");
      if (transport === undefined) {
        throw new Deno.errors.NotSupported(`no ${destination.transport} transport`);
      }
      await transport.send(bytes, destination);
    } catch (error) {
      this.counters.sendErrors++;
      throw error;
    }
  }

  #deliver(message: Datagram): void {
    this.counters.datagramsReceived++;
    try {
      if (message.refused === undefined) this.receive(message.bytes, message.source);
      else this.#refused(message.bytes, message.source, message.refused);
    } catch (error) {
      this.counters.handlerErrors++;
      log.error("Error handling a message from {source}: {error}", {
        source: `${message.source.hostname}:${message.source.port}`,
        error,
      });
    }
  }

  /**
   * A message a stream could not frame (RFC 3261 section 18.3): counted as a drop
   * (`oversize` for 513), logged sparingly, and a request whose header section was read
   * is answered with the status (400 without Content-Length, 513 too large).
   */
  #refused(header: Uint8Array, source: SipAddress, refused: NonNullable<Datagram["refused"]>): void {
    if (this.#allowed !== undefined && !this.#allowed.allows(source.hostname)) {
      this.#notAllowed(source);
      return;
    }
    this.#parseError(
      new SipParseError(refused.status === 513 ? "too-large" : "bad-content-length", refused.reason),
      source,
    );
    if (header.length === 0) return;
    let frame: SipFrame;
    try {
      frame = parseFrame(header, this.#limits, true);
    } catch {
      return;
    }
    this.#answerStatelessly(
      frame,
      refused.status,
      refused.status === 513 ? "Message Too Large" : refused.reason,
      source,
    );
  }

  /** Handles one datagram (public for tests that feed bytes directly). */
  receive(bytes: Uint8Array, source: SipAddress): void {
    if (this.#allowed !== undefined && !this.#allowed.allows(source.hostname)) {
      this.#notAllowed(source);
      return;
    }
    if (isKeepAlive(bytes)) {
      this.counters.keepAlives++;
      return;
    }
    let frame: SipFrame;
    let message: SipMessage;
    try {
      frame = parseFrame(bytes, this.#limits);
    } catch (error) {
      this.#parseError(error, source);
      return;
    }
    try {
      message = interpretFrame(frame);
    } catch (error) {
      this.#parseError(error, source);
      this.#answerBadRequest(frame, error, source);
      return;
    }
    if (message.kind === "response") {
      this.counters.responsesReceived++;
      if (!this.transactions.receiveResponse(message)) this.counters.strayResponses++;
      return;
    }
    this.counters.requestsReceived++;
    const top = message.via[0] as Via;
    const stamped = stampVia(top, source);
    const request: SipRequest = stamped === top ? message : replaceTopVia(message, stamped);
    this.transactions.receiveRequest(request, source);
  }

  #parseError(error: unknown, source: SipAddress): void {
    this.counters.parseErrors++;
    const oversize = error instanceof SipParseError && error.code === "too-large";
    this.counters.dropped[oversize ? "oversize" : "parse_error"]++;
    const suppressed = this.#parseErrorLog.take();
    if (suppressed === undefined) return;
    log.warn("Dropped unparseable message from {source}: {reason}", {
      source: `${source.hostname}:${source.port}`,
      reason: error instanceof Error ? error.message : String(error),
      suppressedSinceLast: suppressed,
    });
  }

  /** Not on the allowlist: no answer at all (nothing for a scanner to learn), counted, logged sparingly. */
  #notAllowed(source: SipAddress): void {
    this.counters.dropped.not_allowed++;
    const suppressed = this.#notAllowedLog.take();
    if (suppressed === undefined) return;
    log.warn("Dropped a datagram from {source}: not in SIP_SIGNALING_SERVICE_ALLOWED_SOURCES", {
      source: `${source.hostname}:${source.port}`,
      suppressedSinceLast: suppressed,
    });
  }

  /**
   * Stateless `400` (or `505` for another SIP version) for a request whose headers
   * are broken, if its top Via can be read (section 8.2.6.2 copies Via, From, To,
   * Call-ID and CSeq as they are). Never for ACK (section 17.2.1).
   */
  #answerBadRequest(frame: SipFrame, error: unknown, source: SipAddress): void {
    if (!(error instanceof SipParseError)) return;
    const status = error.code === "bad-version" ? 505 : 400;
    const reason = status === 505
      ? "Version Not Supported"
      : error.code === "missing-header"
      ? `Missing ${error.header} Header`
      : error.header !== undefined
      ? `Bad ${error.header} Header`
      : "Bad Request Line";
    this.#answerStatelessly(frame, status, reason, source);
  }

  /** A stateless answer to a request we cannot take, if it is one and its top Via routes it. */
  #answerStatelessly(frame: SipFrame, status: number, reason: string, source: SipAddress): void {
    const method = /^([^ ]+) /.exec(frame.startLine)?.[1];
    if (method === undefined || frame.startLine.startsWith("SIP/") || method === "ACK") return;
    let top: Via;
    try {
      top = parseVia(splitHeaderList(headerValue(frame.headers, "Via") ?? "")[0] ?? "");
    } catch {
      return; // Cannot route a response.
    }
    let head = `SIP/2.0 ${status} ${reason}\r\n`;
    let firstVia = true;
    for (const h of frame.headers) {
      const name = canonicalHeaderName(h.name);
      if (name === "Via") {
        const value = firstVia ? formatVia(stampVia(top, source)) : h.value;
        // The first Via line may hold several values: keep the rest as received.
        const rest = firstVia ? splitHeaderList(h.value).slice(1) : [];
        head += `Via: ${withoutControls([value, ...rest].join(", "))}\r\n`;
        firstVia = false;
      } else if (name === "From" || name === "To" || name === "Call-ID" || name === "CSeq") {
        // Copied as received (8.2.6.2), less any control character: the answer stays a valid message.
        head += `${name}: ${withoutControls(h.value)}\r\n`;
      }
    }
    head += "Content-Length: 0\r\n\r\n";
    this.counters.badRequestsAnswered++;
    this.send(new TextEncoder().encode(head), responseDestination(stampVia(top, source), source)).catch(
      () => {},
    );
  }

  /** Stops receiving, ends every transaction, closes the transport. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.transactions.close();
    await Promise.all(this.transports.map((t) => t.close()));
    await this.#loop;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
