/**
 * Who may send us SIP: a list of CIDR blocks, IPv4 and IPv6. Anything else is dropped
 * before parsing, with no answer at all, so that scanners learn nothing (RFC 3261
 * section 26.1.5 leaves the choice of whom to answer to the operator; a UAS behind a
 * gateway answers only the gateway). Pure: no socket, no clock.
 */

/** One parsed CIDR block: family, the network's bits and the prefix length. */
export interface CidrBlock {
  readonly family: 4 | 6;
  /** Address as a 32-bit (v4) or 128-bit (v6) integer, host bits cleared. */
  readonly network: bigint;
  readonly prefix: number;
  /** As written, normalised ("10.0.0.0/8", "fc00::/7"). */
  readonly text: string;
}

/** The default of SIP_SIGNALING_SERVICE_ALLOWED_SOURCES: loopback and private ranges. */
export const DEFAULT_ALLOWED_SOURCES = [
  "127.0.0.0/8",
  "::1/128",
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "fc00::/7",
] as const;

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

function parseIpv4(text: string): bigint | undefined {
  if (!IPV4.test(text)) return undefined;
  let n = 0n;
  for (const part of text.split(".")) n = (n << 8n) | BigInt(Number(part));
  return n;
}

/** RFC 4291 section 2.2 text forms, including "::" and a dotted IPv4 tail. */
function parseIpv6(text: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(text) || !text.includes(":")) return undefined;
  let groups: string[];
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const expand = (half: string): string[] | undefined => {
    if (half === "") return [];
    const parts = half.split(":");
    const last = parts[parts.length - 1] as string;
    if (last.includes(".")) {
      const v4 = parseIpv4(last);
      if (v4 === undefined) return undefined;
      parts.splice(parts.length - 1, 1, (v4 >> 16n).toString(16), (v4 & 0xffffn).toString(16));
    }
    return parts;
  };
  const head = expand(halves[0] as string);
  const tail = halves.length === 2 ? expand(halves[1] as string) : [];
  if (head === undefined || tail === undefined) return undefined;
  if (halves.length === 2) {
    const fill = 8 - head.length - tail.length;
    if (fill < 1) return undefined;
    groups = [...head, ...Array<string>(fill).fill("0"), ...tail];
  } else groups = head;
  if (groups.length !== 8) return undefined;
  let n = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    n = (n << 16n) | BigInt(parseInt(g, 16));
  }
  return n;
}

/** An address as (family, integer); IPv4-mapped IPv6 (::ffff:a.b.c.d) counts as IPv4. */
export function parseIpAddress(text: string): { family: 4 | 6; value: bigint } | undefined {
  const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const v4 = parseIpv4(bare);
  if (v4 !== undefined) return { family: 4, value: v4 };
  const v6 = parseIpv6(bare.replace(/%.*$/, "")); // A zone index (fe80::1%eth0) names no other host.
  if (v6 === undefined) return undefined;
  if (v6 >> 32n === 0xffffn) return { family: 4, value: v6 & 0xffffffffn };
  return { family: 6, value: v6 };
}

/** Parses "a.b.c.d/n", "x::y/n", or a bare address (a /32 or /128). */
export function parseCidr(text: string): CidrBlock {
  const trimmed = text.trim();
  const slash = trimmed.indexOf("/");
  const addressText = slash === -1 ? trimmed : trimmed.slice(0, slash);
  const address = parseIpAddress(addressText);
  if (address === undefined) throw new SyntaxError(`Cannot parse CIDR "${text}": bad address`);
  const bits = address.family === 4 ? 32 : 128;
  let prefix = bits;
  if (slash !== -1) {
    const p = trimmed.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > bits) {
      throw new SyntaxError(`Cannot parse CIDR "${text}": prefix must be 0-${bits}`);
    }
    prefix = Number(p);
  }
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
  const network = address.value & mask;
  return {
    family: address.family,
    network,
    prefix,
    text: `${formatAddress(address.family, network)}/${prefix}`,
  };
}

function formatAddress(family: 4 | 6, value: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join(".");
  }
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((value >> s) & 0xffffn).toString(16));
  // Compress the longest run of zero groups (RFC 5952 section 4.2).
  let best = { at: -1, len: 0 };
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > best.len && j - i > 1) best = { at: i, len: j - i };
    i = j;
  }
  if (best.at === -1) return groups.join(":");
  return `${groups.slice(0, best.at).join(":")}::${groups.slice(best.at + best.len).join(":")}`;
}

/** Most distinct source addresses whose verdict is remembered. */
const VERDICTS_KEPT = 4096;

/** The allowlist; `allows` is on every datagram's path, so verdicts are cached per address. */
export class SourceAllowlist {
  readonly blocks: readonly CidrBlock[];
  readonly #verdicts = new Map<string, boolean>();

  constructor(blocks: readonly CidrBlock[]) {
    this.blocks = blocks;
  }

  /** From "cidr, cidr, ..."; throws `SyntaxError` naming the bad entry. */
  static parse(list: string): SourceAllowlist {
    const entries = list.split(",").map((s) => s.trim()).filter((s) => s !== "");
    if (entries.length === 0) throw new SyntaxError("Cannot parse allowlist: no CIDR given");
    return new SourceAllowlist(entries.map(parseCidr));
  }

  /** True when `hostname` (an IP address as the socket reports it) is inside a block. */
  allows(hostname: string): boolean {
    const known = this.#verdicts.get(hostname);
    if (known !== undefined) return known;
    const verdict = this.#match(hostname);
    if (this.#verdicts.size >= VERDICTS_KEPT) this.#verdicts.clear(); // A scan of many addresses.
    this.#verdicts.set(hostname, verdict);
    return verdict;
  }

  #match(hostname: string): boolean {
    const address = parseIpAddress(hostname);
    if (address === undefined) return false;
    const bits = address.family === 4 ? 32 : 128;
    for (const block of this.blocks) {
      if (block.family !== address.family) continue;
      const shift = BigInt(bits - block.prefix);
      if (address.value >> shift === block.network >> shift) return true;
    }
    return false;
  }

  toString(): string {
    return this.blocks.map((b) => b.text).join(", ");
  }
}
