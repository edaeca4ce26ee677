/**
 * Publishing platform events (CONTRACTS.md section 4): topic exchange
 * `sentiric_events` (durable), routing key = event type, persistent messages,
 * `content-type: application/json`, a unique `message-id`, body in the proto3 JSON
 * mapping. Publisher confirms: an event stays in the outbox until the broker
 * confirms it; across a broker outage it is kept and re-sent after reconnecting.
 */
import { Buffer } from "node:buffer";
import amqp from "amqplib";
import { getLogger } from "@logtape/logtape";
import type { PlatformEvent } from "./platform_events.ts";
import { redactUrl } from "./config.ts";
import { maskPhoneNumbers } from "./logging.ts";

export const EVENTS_EXCHANGE = "sentiric_events";

const log = getLogger(["orchestration", "events"]);

export {
  callAnswered,
  callDtmf,
  callEnded,
  callStarted,
  callTransferFailed,
  callTransferred,
} from "./platform_events.ts";
export type { PlatformEvent } from "./platform_events.ts";

export interface EventPublisher extends AsyncDisposable {
  /** Queues the event; it is delivered (confirmed) as soon as the bus allows. */
  publish(event: PlatformEvent): void;
  /** Events not yet confirmed. */
  readonly pending: number;
  /** Events confirmed by the bus (printed, for the stdout sink), by type. */
  readonly confirmedByType: ReadonlyMap<string, number>;
  /** True while events can be delivered now (the broker connection is up). */
  readonly connected: boolean;
  /** Why the last connection attempt failed, while it is down (e.g. the broker refused our login). */
  readonly lastError: string | undefined;
  /** Resolves when the outbox is empty or `timeoutMs` passed; true if empty. */
  drain(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** Fields whose values may hold a phone number: URIs, numbers, contact values. */
const NUMBER_FIELDS = /uri|number|contactvalue|phone/i;

/** A copy of an event body for a log line: phone numbers in number-bearing fields masked. */
export function maskNumbersIn(value: unknown, key = ""): unknown {
  if (typeof value === "string") return NUMBER_FIELDS.test(key) ? maskPhoneNumbers(value) : value;
  if (Array.isArray(value)) return value.map((v) => maskNumbersIn(v, key));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskNumbersIn(v, k)]));
  }
  return value;
}

/** Development sink: prints each event as one JSON line on stdout. */
export class ConsoleEventSink implements EventPublisher {
  readonly published: PlatformEvent[] = [];
  readonly confirmedByType = new Map<string, number>();
  readonly connected = true;
  readonly lastError = undefined;
  /** Printing never waits: nothing is ever pending. */
  get pending(): number {
    return 0;
  }
  publish(event: PlatformEvent): void {
    this.published.push(event);
    this.confirmedByType.set(event.type, (this.confirmedByType.get(event.type) ?? 0) + 1);
    // The event keeps the numbers (the contract); its log line does not.
    log.info("event {type} {body}", {
      type: event.type,
      traceId: event.traceId,
      body: maskNumbersIn(event.body),
    });
  }
  drain(): Promise<boolean> {
    return Promise.resolve(true);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

interface OutboxEntry {
  readonly event: PlatformEvent;
  readonly messageId: string;
  inFlight: boolean;
}

export interface AmqpPublisherOptions {
  /**
   * The broker, or the nodes of a cluster: the first that answers is used; when its
   * connection fails the next is tried first, and so on round the list.
   */
  readonly url: string | readonly string[];
  /** First reconnect delay, doubled up to `maxReconnectMs`. Default 250. */
  readonly reconnectMs?: number;
  readonly maxReconnectMs?: number;
}

/** RabbitMQ publisher with confirms, an outbox, reconnection and failover between cluster nodes. */
export class AmqpEventPublisher implements EventPublisher {
  readonly #urls: readonly string[];
  /** The node in use, or the one to try first. */
  #node = 0;
  readonly #outbox = new Map<string, OutboxEntry>();
  #connection: amqp.ChannelModel | undefined;
  #channel: amqp.ConfirmChannel | undefined;
  #connecting: Promise<void> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #delay: number;
  readonly #baseDelay: number;
  readonly #maxDelay: number;
  #closed = false;
  #drainWaiters: (() => void)[] = [];
  published = 0;
  readonly confirmedByType = new Map<string, number>();
  #lastError: string | undefined;

  constructor(options: AmqpPublisherOptions) {
    this.#urls = typeof options.url === "string" ? [options.url] : [...options.url];
    if (this.#urls.length === 0) throw new Error("AmqpEventPublisher needs a broker URL");
    this.#baseDelay = options.reconnectMs ?? 250;
    this.#maxDelay = options.maxReconnectMs ?? 10_000;
    this.#delay = this.#baseDelay;
  }

  get pending(): number {
    return this.#outbox.size;
  }

  get connected(): boolean {
    return this.#channel !== undefined;
  }

  get lastError(): string | undefined {
    return this.connected ? undefined : this.#lastError;
  }

  /** Connects once (for start-up checks); later failures reconnect on their own. */
  async start(): Promise<void> {
    await this.#connect();
  }

  /** The broker URL in use (or tried next), password redacted. */
  get node(): string {
    return redactUrl(this.#urls[this.#node] as string);
  }

  #connect(): Promise<void> {
    if (this.#connecting !== undefined) return this.#connecting;
    this.#connecting = (async () => {
      try {
        let lastError: unknown;
        // Each node once, from the one in use (or next after a lost one) round the list.
        for (let tried = 0; tried < this.#urls.length; tried++) {
          const node = (this.#node + tried) % this.#urls.length;
          try {
            await this.#open(node);
            this.#node = node;
            return;
          } catch (error) {
            lastError = error;
            this.#reportFailure(node, error);
          }
        }
        this.#scheduleReconnect();
        throw lastError;
      } finally {
        this.#connecting = undefined;
      }
    })();
    return this.#connecting;
  }

  async #open(node: number): Promise<void> {
    const connection = await amqp.connect(this.#urls[node] as string);
    connection.on("error", (error: unknown) => log.warn("RabbitMQ connection error: {error}", { error }));
    connection.on("close", () => this.#lost(connection));
    try {
      const channel = await connection.createConfirmChannel();
      channel.on("error", (error: unknown) => log.warn("RabbitMQ channel error: {error}", { error }));
      await channel.assertExchange(EVENTS_EXCHANGE, "topic", { durable: true });
      if (this.#closed) {
        await connection.close().catch(() => {});
        return;
      }
      this.#connection = connection;
      this.#channel = channel;
    } catch (error) {
      await connection.close().catch(() => {});
      throw error;
    }
    this.#delay = this.#baseDelay;
    this.#lastError = undefined;
    log.info("Connected to RabbitMQ at {url}", { url: redactUrl(this.#urls[node] as string) });
    this.#flush();
  }

  #reportFailure(node: number, error: unknown): void {
    const url = redactUrl(this.#urls[node] as string);
    const message = error instanceof Error ? error.message : String(error);
    if (/ACCESS.REFUSED|403/.test(message)) {
      // Not a passing outage: a wrong password or vhost. Say so loudly, every time.
      this.#lastError = "access_refused";
      log.error("RabbitMQ at {url} refused our credentials: {error}; check RABBITMQ_URL", {
        url,
        error: message,
        pending: this.#outbox.size,
      });
    } else {
      this.#lastError = "unreachable";
      log.warn("Cannot reach RabbitMQ at {url}: {error}; {pending} event(s) kept, retrying", {
        url,
        error: message,
        pending: this.#outbox.size,
      });
    }
  }

  #lost(connection: amqp.ChannelModel): void {
    if (this.#connection !== connection) return;
    this.#connection = undefined;
    this.#channel = undefined;
    for (const entry of this.#outbox.values()) entry.inFlight = false;
    if (this.#closed) return;
    this.#lastError = "connection_lost";
    const lost = this.node;
    // A cluster: the next node is tried first.
    this.#node = (this.#node + 1) % this.#urls.length;
    log.warn("Lost RabbitMQ connection to {url}; {pending} event(s) kept, reconnecting", {
      url: lost,
      pending: this.#outbox.size,
    });
    this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#retryTimer !== undefined) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#connect().catch(() => {});
    }, this.#delay);
    this.#delay = Math.min(2 * this.#delay, this.#maxDelay);
  }

  publish(event: PlatformEvent): void {
    const messageId = crypto.randomUUID();
    this.#outbox.set(messageId, { event, messageId, inFlight: false });
    if (this.#channel !== undefined) this.#send(this.#outbox.get(messageId) as OutboxEntry);
    else if (!this.#closed) this.#connect().catch(() => {});
  }

  #flush(): void {
    for (const entry of this.#outbox.values()) if (!entry.inFlight) this.#send(entry);
  }

  #send(entry: OutboxEntry): void {
    const channel = this.#channel;
    if (channel === undefined) return;
    entry.inFlight = true;
    try {
      channel.publish(
        EVENTS_EXCHANGE,
        entry.event.type,
        Buffer.from(JSON.stringify(entry.event.body)),
        {
          persistent: true,
          contentType: "application/json",
          messageId: entry.messageId,
          timestamp: Math.floor(Date.now() / 1000),
          type: entry.event.type,
          headers: { "x-trace-id": entry.event.traceId },
        },
        (error: unknown) => {
          if (error !== null && error !== undefined) {
            // Nacked or channel lost: stays in the outbox, re-sent after reconnect.
            entry.inFlight = false;
            return;
          }
          if (this.#outbox.delete(entry.messageId)) {
            this.published++;
            this.confirmedByType.set(entry.event.type, (this.confirmedByType.get(entry.event.type) ?? 0) + 1);
          }
          if (this.#outbox.size === 0) this.#wakeDrainers();
        },
      );
    } catch (error) {
      entry.inFlight = false;
      log.warn("Publish failed for {type}: {error}", { type: entry.event.type, error });
    }
  }

  #wakeDrainers(): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const wake of waiters) wake();
  }

  drain(timeoutMs: number): Promise<boolean> {
    if (this.#outbox.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#drainWaiters = this.#drainWaiters.filter((w) => w !== wake);
        resolve(this.#outbox.size === 0);
      }, timeoutMs);
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.#drainWaiters.push(wake);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    await this.#connecting?.catch(() => {});
    const connection = this.#connection;
    this.#connection = undefined;
    this.#channel = undefined;
    if (this.#outbox.size > 0) {
      log.error("Closing with {pending} unconfirmed event(s)", { pending: this.#outbox.size });
    }
    await connection?.close().catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
