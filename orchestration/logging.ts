/**
 * Structured logging with LogTape: JSON lines in production, readable text with
 * ENV=development. Every formatted line passes through `redactSecrets`, so a
 * password inside a URL never reaches a log.
 */
import {
  configure,
  getConsoleSink,
  getTextFormatter,
  jsonLinesFormatter,
  type LogRecord,
  reset,
} from "@logtape/logtape";

/** Replaces the password of any `scheme://user:password@` in text. */
export function redactSecrets(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^:@/\s"]*):[^@/\s"]*@/gi, "$1:***@");
}

export async function configureLogging(development: boolean): Promise<void> {
  const base = development ? getTextFormatter({ timestamp: "time" }) : jsonLinesFormatter;
  const formatter = (record: LogRecord) => redactSecrets(base(record));
  await configure({
    reset: true,
    // Non-blocking: records are buffered and flushed off the hot path; `reset()` flushes.
    sinks: { console: getConsoleSink({ formatter, nonBlocking: true }) },
    loggers: [
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
      { category: [], sinks: ["console"], lowestLevel: "info" },
    ],
  });
}

export async function resetLogging(): Promise<void> {
  await reset();
}
