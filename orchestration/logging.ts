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

export async function configureLogging(development: boolean): Promise<void> {
  const base = development ? getTextFormatter({ timestamp: "time" }) : jsonLinesFormatter;
  await configure({
    reset: true,
    sinks: { stdout: batchedLineSink((record) => redactSecrets(base(record))) },
    loggers: [
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
      { category: [], sinks: ["stdout"], lowestLevel: "info" },
    ],
  });
}

export async function resetLogging(): Promise<void> {
  await reset();
}
