/** What was wrong with a message, stable for callers that map it to a SIP status. */
export type SipParseErrorCode =
  | "too-large"
  | "too-many-headers"
  | "line-too-long"
  | "bad-encoding"
  | "no-header-end"
  | "bad-start-line"
  | "bad-version"
  | "bad-header"
  | "missing-header"
  | "bad-content-length";

/**
 * A message that cannot be parsed (RFC 3261 section 7, RFC 4475 section 3.1.2).
 * The message names the problem, e.g. "Cannot parse header 'Via': missing branch".
 */
export class SipParseError extends SyntaxError {
  override readonly name = "SipParseError";
  readonly code: SipParseErrorCode;
  /** The canonical name of the header at fault, when one is. */
  readonly header: string | undefined;

  constructor(
    code: SipParseErrorCode,
    message: string,
    options?: { header?: string; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.header = options?.header;
  }
}
