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
import { bareHost, type SipAddress, type SipTransport } from "./transport.ts";
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
  readonly transport: SipTransport;
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

  constructor(transport: SipTransport, options: EndpointOptions = {}) {
    this.transport = transport;
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

  /** Starts the receive loop, delivering to `user`. */
  start(user: TransactionUser): void {
    if (this.#loop !== undefined) throw new Error("SipEndpoint already started");
    this.transactions.setUser(user);
    this.#loop = this.#run();
  }

  /** Sends bytes; counts and rethrows failures. */
  async send(bytes: Uint8Array, destination: SipAddress): Promise<void> {
    try {
      await this.transport.send(bytes, destination);
    } catch (error) {
      this.counters.sendErrors++;
      throw error;
    }
  }

  async #run(): Promise<void> {
    for await (const datagram of this.transport.receive()) {
      this.counters.datagramsReceived++;
      try {
        this.receive(datagram.bytes, datagram.source);
      } catch (error) {
        this.counters.handlerErrors++;
        log.error("Error handling a datagram from {source}: {error}", {
          source: `${datagram.source.hostname}:${datagram.source.port}`,
          error,
        });
      }
    }
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
    const method = /^([^ ]+) /.exec(frame.startLine)?.[1];
    if (method === undefined || frame.startLine.startsWith("SIP/") || method === "ACK") return;
    let top: Via;
    try {
      top = parseVia(splitHeaderList(headerValue(frame.headers, "Via") ?? "")[0] ?? "");
    } catch {
      return; // Cannot route a response.
    }
    const status = error.code === "bad-version" ? 505 : 400;
    const reason = status === 505
      ? "Version Not Supported"
      : error.code === "missing-header"
      ? `Missing ${error.header} Header`
      : error.header !== undefined
      ? `Bad ${error.header} Header`
      : "Bad Request Line";
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
    this.send(new TextEncoder().encode(head), responseDestination(stampVia(top, source))).catch(() => {});
  }

  /** Stops receiving, ends every transaction, closes the transport. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.transactions.close();
    await this.transport.close();
    await this.#loop;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
