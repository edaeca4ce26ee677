/**
 * Header-value grammars of RFC 3261 section 25: URIs, name-addr, Via, CSeq, params.
 * Pure functions over strings; each throws `SipParseError` ("bad-header") naming
 * what it could not read. The caller adds the header name.
 */
import { SipParseError } from "./errors.ts";
import type { CSeq, NameAddr, Param, SipUri, Via } from "./message.ts";

function fail(message: string): never {
  throw new SipParseError("bad-header", message);
}

// Character classes (RFC 3261 section 25.1), as lookup tables over ASCII.
function charTable(chars: string, alnum = true): Uint8Array {
  const t = new Uint8Array(128);
  if (alnum) {
    for (let c = 0x30; c <= 0x39; c++) t[c] = 1;
    for (let c = 0x41; c <= 0x5a; c++) t[c] = 1;
    for (let c = 0x61; c <= 0x7a; c++) t[c] = 1;
  }
  for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)] = 1;
  return t;
}
const TOKEN = charTable("-.!%*_+`'~");
const WORD = charTable("-.!%*_+`'~()<>:\\\"/[]?{}");
const HOST = charTable("-.");
const UNRESERVED = "-_.!~*'()";
const USER = charTable(UNRESERVED + "%&=+$,;?/");
const PASSWORD = charTable(UNRESERVED + "%&=+$,");
const PARAM_CHAR = charTable(UNRESERVED + "%[]/:&+$");
const HNV_CHAR = charTable(UNRESERVED + "%[]/?:+$");
/** gen-value: token / host (including IPv6 references). */
const GEN_VALUE = charTable("-.!%*_+`'~:[]");

function allIn(table: Uint8Array, s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || table[c] !== 1) return false;
  }
  return true;
}

export function isToken(s: string): boolean {
  return s.length > 0 && allIn(TOKEN, s);
}

function escapesValid(s: string): boolean {
  for (let i = s.indexOf("%"); i !== -1; i = s.indexOf("%", i + 1)) {
    if (!/^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3))) return false;
  }
  return true;
}

/** A cursor over one header value; SWS is optional linear white space. */
class Scanner {
  pos = 0;
  constructor(readonly text: string) {}

  get done(): boolean {
    return this.pos >= this.text.length;
  }
  peek(): string {
    return this.text.charAt(this.pos);
  }
  ws(): boolean {
    const start = this.pos;
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x09) break;
      this.pos++;
    }
    return this.pos > start;
  }
  /** SWS ch SWS; false (position kept) when `ch` is not next. */
  sep(ch: string): boolean {
    const save = this.pos;
    this.ws();
    if (this.peek() !== ch) {
      this.pos = save;
      return false;
    }
    this.pos++;
    this.ws();
    return true;
  }
  run(table: Uint8Array): string {
    const start = this.pos;
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c >= 128 || table[c] !== 1) break;
      this.pos++;
    }
    return this.text.slice(start, this.pos);
  }
  token(what: string): string {
    const t = this.run(TOKEN);
    if (t === "") fail(`expected ${what} at "${this.rest()}"`);
    return t;
  }
  /** quoted-string; returns the raw form including quotes. */
  quoted(): string {
    const start = this.pos;
    if (this.peek() !== '"') fail("expected quoted string");
    this.pos++;
    while (this.pos < this.text.length) {
      const c = this.text.charCodeAt(this.pos);
      if (c === 0x5c) this.pos += 2;
      else if (c === 0x22) {
        this.pos++;
        return this.text.slice(start, this.pos);
      } else this.pos++;
    }
    fail("unterminated quoted string");
  }
  rest(): string {
    return this.text.slice(this.pos);
  }
}

/** Removes the quotes and backslash escapes of a quoted-string. */
export function unquote(raw: string): string {
  return raw.slice(1, -1).replace(/\\(.)/g, "$1");
}

/** `*( SEMI generic-param )` where SEMI and EQUAL allow surrounding white space. */
function readParams(sc: Scanner): Param[] {
  const params: Param[] = [];
  while (sc.sep(";")) {
    const name = sc.run(TOKEN);
    if (name === "") fail("empty parameter");
    if (sc.sep("=")) {
      const value = sc.peek() === '"' ? sc.quoted() : sc.run(GEN_VALUE);
      if (value === "") fail(`parameter '${name}' has an empty value`);
      params.push({ name, value });
    } else {
      params.push({ name });
    }
  }
  return params;
}

/** URI-level `;params` (no white space allowed, RFC 3261 section 19.1.1). */
function readUriParams(text: string): Param[] {
  if (text === "") return [];
  return text.split(";").map((p) => {
    const eq = p.indexOf("=");
    const name = eq === -1 ? p : p.slice(0, eq);
    if (name === "" || !allIn(PARAM_CHAR, name)) {
      fail(`bad URI parameter "${p}"`);
    }
    if (eq === -1) return { name };
    const value = p.slice(eq + 1);
    if (!allIn(PARAM_CHAR, value)) fail(`bad URI parameter "${p}"`);
    return { name, value };
  });
}

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** host = hostname / IPv4address / IPv6reference. Returns it as written. */
function checkHost(host: string): string {
  if (host.startsWith("[")) {
    if (!/^\[[0-9a-fA-F:.]+\]$/.test(host)) fail(`bad IPv6 reference "${host}"`);
    return host;
  }
  if (host === "" || !allIn(HOST, host)) fail(`bad host "${host}"`);
  if (IPV4.test(host) && host.split(".").some((o) => Number(o) > 255)) {
    fail(`bad IPv4 address "${host}"`);
  }
  return host;
}

function checkPort(text: string): number {
  if (!/^\d{1,5}$/.test(text)) fail(`bad port "${text}"`);
  const port = Number(text);
  if (port < 1 || port > 65535) fail(`port out of range "${text}"`);
  return port;
}

/** Splits `host[:port]`, aware of IPv6 brackets. */
function splitHostPort(text: string): { host: string; port?: number } {
  let host = text;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close === -1) fail(`bad IPv6 reference "${text}"`);
    host = text.slice(0, close + 1);
    const after = text.slice(close + 1);
    if (after !== "") {
      if (!after.startsWith(":")) fail(`bad host "${text}"`);
      portText = after.slice(1);
    }
  } else {
    const colon = text.indexOf(":");
    if (colon !== -1) {
      host = text.slice(0, colon);
      portText = text.slice(colon + 1);
    }
  }
  checkHost(host);
  return portText === undefined ? { host } : { host, port: checkPort(portText) };
}

const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>"]+$/;

/** RFC 3986 absolute URI shape (scheme ":" something, no white space or brackets). */
export function isAbsoluteUri(text: string): boolean {
  return ABSOLUTE_URI.test(text);
}

/** Parses a SIP or SIPS URI (RFC 3261 section 19.1.1). */
export function parseUri(text: string): SipUri {
  const colon = text.indexOf(":");
  const scheme = text.slice(0, colon).toLowerCase();
  if (colon === -1 || (scheme !== "sip" && scheme !== "sips")) {
    fail(`not a SIP URI "${text}"`);
  }
  if (!escapesValid(text)) fail(`bad escape in URI "${text}"`);
  let rest = text.slice(colon + 1);
  // userinfo first: the user part may hold "?", ";" and "," (RFC 4475 3.1.1.2).
  let user: string | undefined;
  let password: string | undefined;
  const at = rest.indexOf("@");
  if (at !== -1) {
    const userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const pc = userinfo.indexOf(":");
    user = pc === -1 ? userinfo : userinfo.slice(0, pc);
    if (pc !== -1) password = userinfo.slice(pc + 1);
    if (user === "" || !allIn(USER, user)) fail(`bad user part in "${text}"`);
    if (password !== undefined && !allIn(PASSWORD, password)) {
      fail(`bad password in "${text}"`);
    }
  }
  let headers: Param[] = [];
  const q = rest.indexOf("?");
  if (q !== -1) {
    headers = rest.slice(q + 1).split("&").map((h) => {
      const eq = h.indexOf("=");
      if (eq <= 0) fail(`bad URI header "${h}"`);
      const name = h.slice(0, eq);
      const value = h.slice(eq + 1);
      if (!allIn(HNV_CHAR, name) || !allIn(HNV_CHAR, value)) {
        fail(`bad URI header "${h}"`);
      }
      return { name, value };
    });
    rest = rest.slice(0, q);
  }
  const semi = rest.indexOf(";");
  const hostport = semi === -1 ? rest : rest.slice(0, semi);
  const params = semi === -1 ? [] : readUriParams(rest.slice(semi + 1));
  const { host, port } = splitHostPort(hostport);
  const uri: {
    scheme: "sip" | "sips";
    user?: string;
    password?: string;
    host: string;
    port?: number;
    params: Param[];
    headers: Param[];
  } = { scheme: scheme as "sip" | "sips", host, params, headers };
  if (user !== undefined) uri.user = user;
  if (password !== undefined) uri.password = password;
  if (port !== undefined) uri.port = port;
  return uri;
}

/** Writes a SIP URI back to text. */
export function formatUri(uri: SipUri): string {
  let s = `${uri.scheme}:`;
  if (uri.user !== undefined) {
    s += uri.user;
    if (uri.password !== undefined) s += `:${uri.password}`;
    s += "@";
  }
  s += uri.host;
  if (uri.port !== undefined) s += `:${uri.port}`;
  s += formatParams(uri.params);
  if (uri.headers.length > 0) {
    s += "?" + uri.headers.map((h) => `${h.name}=${h.value ?? ""}`).join("&");
  }
  return s;
}

export function formatParams(params: readonly Param[]): string {
  let s = "";
  for (const p of params) s += p.value === undefined ? `;${p.name}` : `;${p.name}=${p.value}`;
  return s;
}

function checkUri(uri: string): void {
  if (!isAbsoluteUri(uri)) fail(`bad URI "${uri}"`);
  const scheme = uri.slice(0, uri.indexOf(":")).toLowerCase();
  if (scheme === "sip" || scheme === "sips") parseUri(uri);
}

/**
 * name-addr / addr-spec followed by header parameters (RFC 3261 section 20.10,
 * 25.1): From, To, Contact, Route, Record-Route, Reply-To...
 */
export function parseNameAddr(text: string): NameAddr {
  const sc = new Scanner(text);
  sc.ws();
  let displayName: string | undefined;
  let uri: string;
  const lt = text.indexOf("<");
  if (sc.peek() === '"' || lt !== -1) {
    if (sc.peek() === '"') {
      displayName = unquote(sc.quoted());
      sc.ws();
    } else {
      // display-name = *(token LWS): tokens separated by white space, then "<".
      const words: string[] = [];
      while (sc.peek() !== "<") {
        words.push(sc.token("display name"));
        sc.ws();
      }
      if (words.length > 0) displayName = words.join(" ");
    }
    if (sc.peek() !== "<") fail(`expected "<" at "${sc.rest()}"`);
    const close = text.indexOf(">", sc.pos);
    if (close === -1) fail('missing ">"');
    uri = text.slice(sc.pos + 1, close);
    sc.pos = close + 1;
  } else {
    // addr-spec: the URI ends at the first ";" (its parameters are the header's).
    // A URI with ",", "?" or ";" of its own must be in brackets (section 20.10).
    const start = sc.pos;
    while (!sc.done && sc.peek() !== ";" && sc.peek() !== " " && sc.peek() !== "\t") {
      sc.pos++;
    }
    uri = text.slice(start, sc.pos);
    if (uri.includes("?") || uri.includes(",")) {
      fail(`URI with "?" or "," must be enclosed in "<>": "${uri}"`);
    }
  }
  checkUri(uri);
  const params = readParams(sc);
  sc.ws();
  if (!sc.done) fail(`unexpected "${sc.rest()}"`);
  return displayName === undefined ? { uri, params } : { displayName, uri, params };
}

/** Writes a name-addr (always with brackets). */
export function formatNameAddr(addr: NameAddr): string {
  const dn = addr.displayName === undefined ? "" : `"${addr.displayName.replace(/(["\\])/g, "\\$1")}" `;
  return `${dn}<${addr.uri}>${formatParams(addr.params)}`;
}

/** One Via value: sent-protocol LWS sent-by *( SEMI via-params ) (section 20.42). */
export function parseVia(text: string): Via {
  const sc = new Scanner(text);
  sc.ws();
  const protocol = sc.token("protocol name");
  if (!sc.sep("/")) fail("expected '/' after protocol name");
  const version = sc.token("protocol version");
  if (!sc.sep("/")) fail("expected '/' after protocol version");
  const transport = sc.token("transport").toUpperCase();
  if (protocol.toUpperCase() !== "SIP" || version !== "2.0") {
    fail(`unsupported protocol "${protocol}/${version}"`);
  }
  if (!sc.ws()) fail("expected white space before sent-by");
  let hostport: string;
  if (sc.peek() === "[") {
    const close = text.indexOf("]", sc.pos);
    if (close === -1) fail("bad IPv6 reference");
    sc.pos = close + 1;
    hostport = text.slice(text.indexOf("["), close + 1);
  } else {
    hostport = sc.run(HOST);
  }
  if (sc.sep(":")) hostport += ":" + sc.run(TOKEN);
  const { host, port } = splitHostPort(hostport);
  const params = readParams(sc);
  sc.ws();
  if (!sc.done) fail(`unexpected "${sc.rest()}"`);
  for (const p of params) {
    const name = p.name.toLowerCase();
    if (name === "rport" && p.value !== undefined) checkPort(p.value);
    if (name === "ttl" && !(/^\d{1,3}$/.test(p.value ?? "") && Number(p.value) <= 255)) {
      fail("bad ttl");
    }
    if ((name === "branch" || name === "received" || name === "maddr") && p.value === undefined) {
      fail(`parameter '${p.name}' needs a value`);
    }
  }
  return port === undefined ? { transport, host, params } : { transport, host, port, params };
}

export function formatVia(via: Via): string {
  const port = via.port === undefined ? "" : `:${via.port}`;
  return `SIP/2.0/${via.transport} ${via.host}${port}${formatParams(via.params)}`;
}

/** CSeq = 1*DIGIT LWS Method, the number below 2**31 (section 8.1.1.5). */
export function parseCSeq(text: string): CSeq {
  const m = /^(\d+)[ \t]+([^ \t]+)$/.exec(text.trim());
  if (m === null) fail("expected '<number> <method>'");
  const seq = Number(m[1]);
  if (!(seq < 2 ** 31)) fail(`sequence number ${m[1]} out of range`);
  const method = m[2] as string;
  if (!isToken(method)) fail(`bad method "${method}"`);
  return { seq, method };
}

/** Call-ID = word [ "@" word ] (section 25.1). */
export function checkCallId(text: string): string {
  const at = text.indexOf("@");
  const parts = at === -1 ? [text] : [text.slice(0, at), text.slice(at + 1)];
  if (parts.some((p) => p === "" || !allIn(WORD, p))) fail(`bad Call-ID "${text}"`);
  return text;
}

/** delta-seconds (and other 32-bit scalars): 1*DIGIT below 2**32. */
export function parseDeltaSeconds(text: string): number {
  if (!/^\d+$/.test(text)) fail(`expected digits, got "${text}"`);
  const n = Number(text);
  if (n > 0xffffffff) fail(`value ${text} out of range`);
  return n;
}
