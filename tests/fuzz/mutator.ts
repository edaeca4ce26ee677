// Hostile datagrams for the fuzz run: real INVITE/ACK/BYE/CANCEL/OPTIONS/INFO messages
// and the RFC 4475 torture fixtures, mutated (bit flips, truncation, duplicated,
// removed and shuffled lines, huge values, bad Content-Length, control characters,
// splices) or replaced by random bytes. Seeded, so a failing run can be replayed.

/** mulberry32: small, fast, good enough to pick mutations. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SDP = [
  "v=0",
  "o=fuzz 1 1 IN IP4 127.0.0.1",
  "s=-",
  "c=IN IP4 127.0.0.1",
  "t=0 0",
  "m=audio 7000 RTP/AVP 0 8 101",
  "a=rtpmap:101 telephone-event/8000",
  "",
].join("\r\n");

/** A well-formed request of `method`; `n` keeps Call-IDs and branches apart. */
export function realMessage(method: string, n: number, host: string, port: number): string {
  const body = method === "INVITE" ? SDP : method === "INFO" ? "Signal=5\r\nDuration=160\r\n" : "";
  const toTag = method === "BYE" || method === "INFO" ? `;tag=t${n % 50}` : "";
  return [
    `${method} sip:905551112233@${host}:${port} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-fz${n};rport`,
    "Max-Forwards: 70",
    `From: "Fuzz" <sip:905321234567@127.0.0.1>;tag=f${n}`,
    `To: <sip:905551112233@${host}>${toTag}`,
    `Call-ID: fuzz-${n % 997}@127.0.0.1`,
    `CSeq: ${1 + (n % 3)} ${method}`,
    "Contact: <sip:905321234567@127.0.0.1:5999>",
    "Supported: timer",
    ...(body === ""
      ? []
      : [`Content-Type: ${method === "INFO" ? "application/dtmf-relay" : "application/sdp"}`]),
    `Content-Length: ${body.length}`,
    "",
    body,
  ].join("\r\n");
}

const METHODS = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "REGISTER", "UPDATE"];
const CONTROL = ["\u0000", "\u0001", "\u001b", "\u007f", "\r", "\n", "\u000b"];

export class Mutator {
  readonly #random: () => number;
  readonly #fixtures: readonly Uint8Array[];
  readonly #host: string;
  readonly #port: number;
  #n = 0;

  constructor(seed: number, fixtures: readonly Uint8Array[], host: string, port: number) {
    this.#random = seededRandom(seed);
    this.#fixtures = fixtures;
    this.#host = host;
    this.#port = port;
  }

  #int(max: number): number {
    return Math.floor(this.#random() * max);
  }

  #pick<T>(items: readonly T[]): T {
    return items[this.#int(items.length)] as T;
  }

  /** The next hostile datagram. */
  next(): Uint8Array {
    const n = this.#n++;
    const roll = this.#int(100);
    if (roll < 5) return crypto.getRandomValues(new Uint8Array(this.#int(1500)));
    const source = roll < 25 && this.#fixtures.length > 0
      ? new TextDecoder().decode(this.#pick(this.#fixtures))
      : realMessage(this.#pick(METHODS), n, this.#host, this.#port);
    if (roll >= 90) return new TextEncoder().encode(source); // some arrive intact
    return this.#mutate(source);
  }

  #mutate(text: string): Uint8Array {
    const lines = text.split("\r\n");
    switch (this.#int(10)) {
      case 0: { // bit flips
        const bytes = new TextEncoder().encode(text);
        for (let i = 1 + this.#int(8); i > 0; i--) bytes[this.#int(bytes.length)]! ^= 1 << this.#int(8);
        return bytes;
      }
      case 1: // truncation
        return new TextEncoder().encode(text.slice(0, this.#int(text.length)));
      case 2: { // a line duplicated
        const i = this.#int(lines.length);
        lines.splice(i, 0, lines[i] ?? "");
        break;
      }
      case 3: // a line removed
        lines.splice(this.#int(lines.length), 1);
        break;
      case 4: // lines shuffled
        for (let i = lines.length - 1; i > 0; i--) {
          const j = this.#int(i + 1);
          [lines[i], lines[j]] = [lines[j] as string, lines[i] as string];
        }
        break;
      case 5: { // a huge value
        const size = this.#pick([1000, 8000, 9000, 30_000, 66_000]);
        lines.splice(
          1 + this.#int(lines.length - 1),
          0,
          `${this.#pick(["X-Big", "Subject", "Via", "To"])}: ${"A".repeat(size)}`,
        );
        break;
      }
      case 6: { // a bad Content-Length
        const value = this.#pick([
          "-1",
          "99999999999",
          "abc",
          "4294967296",
          "",
          "10, 20",
          String(this.#int(5000)),
        ]);
        const i = lines.findIndex((l) => /^(Content-Length|l):/i.test(l));
        if (i === -1) lines.splice(1, 0, `Content-Length: ${value}`);
        else lines[i] = `Content-Length: ${value}`;
        break;
      }
      case 7: { // a control character in a value
        const i = 1 + this.#int(Math.max(1, lines.length - 1));
        const line = lines[i] ?? "";
        const at = this.#int(line.length + 1);
        lines[i] = line.slice(0, at) + this.#pick(CONTROL) + line.slice(at);
        break;
      }
      case 8: { // spliced with another message
        const other = realMessage(this.#pick(METHODS), this.#n++, this.#host, this.#port).split("\r\n");
        const cut = this.#int(lines.length);
        return new TextEncoder().encode(
          [...lines.slice(0, cut), ...other.slice(this.#int(other.length))].join("\r\n"),
        );
      }
      default: { // a header's value replaced by random printable junk
        const i = 1 + this.#int(Math.max(1, lines.length - 1));
        const name = (lines[i] ?? "X").split(":")[0];
        const junk = Array.from({ length: this.#int(200) }, () => String.fromCharCode(32 + this.#int(95)))
          .join("");
        lines[i] = `${name}: ${junk}`;
      }
    }
    return new TextEncoder().encode(lines.join("\r\n"));
  }
}
