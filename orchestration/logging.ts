/**
 * Structured logging with LogTape: JSON lines in production, readable text with
 * ENV=development. Every formatted line passes through `redactSecrets`, so a
 * password inside a URL never reaches a log.
 */
import {
  configure,
  getTextFormatter,
  jsonLinesFormatter,
  type LogRecord,
  reset,
  type Sink,
} from "@logtape/logtape";

/** Replaces the password of any `scheme://user:password@` in text. */
export function redactSecrets(text: string): string {
  // Most lines hold no URL at all: skip the regular expression for them.
  if (!text.includes("://")) return text;
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^:@/\s"]*):[^@/\s"]*@/gi, "$1:***@");
}

/**
 * Phone numbers out of log lines above debug: every run of 7 or more digits keeps its
 * last 4 (`905551112233` -> `********2233`), enough to tell calls apart, not to dial.
 */
export function maskPhoneNumbers(text: string): string {
  return text.replace(/\d{7,}/g, (digits) => "*".repeat(digits.length - 4) + digits.slice(-4));
}

/** A text line's call ids (`traceId`, `callId`), which the message itself does not show. */
function callIds(properties: Record<string, unknown>): string {
  const ids = ["traceId", "callId"].filter((k) => properties[k] !== undefined).map((k) =>
    `${k}=${String(properties[k])}`
  );
  return ids.length === 0 ? "" : ` (${ids.join(" ")})`;
}

/** Where finished lines go; stdout unless a test says otherwise. */
export interface LineWriter {
  writeSync(bytes: Uint8Array): number;
}

/**
 * A sink that gathers lines and writes them in one go, at most `flushMs` after the
 * first one: one write per batch instead of one per line. Nothing is dropped, however
 * fast lines come; disposing it (LogTape's `reset`) writes what is pending.
 */
export function batchedLineSink(
  format: (record: LogRecord) => string,
  out: LineWriter = Deno.stdout,
  flushMs = 50,
): Sink & Disposable {
  const encoder = new TextEncoder();
  let pending: string[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0) return;
    const bytes = encoder.encode(pending.join(""));
    pending = [];
    try {
      for (let written = 0; written < bytes.length;) written += out.writeSync(bytes.subarray(written));
    } catch {
      // stdout is gone (a closed pipe): logging must never take the service down.
      // The batch is lost; later lines are tried again.
    }
  };
  const sink = (record: LogRecord) => {
    const line = format(record);
    pending.push(line.endsWith("\n") ? line : `${line}\n`);
    if (timer === undefined) {
      const t = setTimeout(flush, flushMs);
      Deno.unrefTimer(t);
      timer = t;
    }
  };
  return Object.assign(sink, { [Symbol.dispose]: flush });
}

/**
 * Escapes control characters in a text log line (all but its final newline), so that
 * a value from the wire (a header with CR, LF or ESC) cannot forge a line or drive the
 * operator's terminal. JSON lines need no such step: JSON escapes them.
 */
export function escapeControls(line: string): string {
  const body = line.endsWith("\n") ? line.slice(0, -1) : line;
  // deno-lint-ignore no-control-regex
  const escaped = body.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, (c) => {
    if (c === "\n") return "\\n";
    if (c === "\r") return "\\r";
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
  });
  return escaped === body ? line : `${escaped}\n`;
}

export async function configureLogging(
  development: boolean,
  level: "debug" | "info" | "warning" | "error" = "info",
): Promise<void> {
  const format = development
    ? ((text) => (record: LogRecord) => escapeControls(redactSecrets(text(record))))(
      getTextFormatter({
        timestamp: "time",
        // One record, one line: values (events, the configuration) rendered compactly.
        value: (v) =>
          typeof v === "string" ? JSON.stringify(v) : Deno.inspect(v, {
            colors: false,
            compact: true,
            breakLength: Infinity,
            depth: 6,
          }),
        format: ({ timestamp, level, category, message, record }) =>
          `${timestamp} [${level}] ${category}: ${message}${callIds(record.properties)}`,
      }),
    )
    : (record: LogRecord) => redactSecrets(jsonLinesFormatter(record));
  await configure({
    reset: true,
    sinks: { stdout: batchedLineSink(format) },
    loggers: [
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
      { category: [], sinks: ["stdout"], lowestLevel: level },
    ],
  });
}

export async function resetLogging(): Promise<void> {
  await reset();
}
