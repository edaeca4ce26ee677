/** Opening a listening socket, with an error that names the setting to change. */

/** A socket the service could not open; the message names the setting to change. */
export class ListenError extends Error {
  override readonly name = "ListenError";
  constructor(readonly setting: string, address: string, cause: unknown) {
    const why = cause instanceof Deno.errors.AddrInUse
      ? "address already in use"
      : cause instanceof Error
      ? cause.message.split("\n")[0]
      : String(cause);
    super(`${setting}: cannot listen on ${address}: ${why}`, { cause });
  }
}

export function listening<T>(setting: string, address: string, open: () => T): T {
  try {
    return open();
  } catch (error) {
    throw new ListenError(setting, address, error);
  }
}

export async function listeningAsync<T>(
  setting: string,
  address: string,
  open: () => Promise<T>,
): Promise<T> {
  try {
    return await open();
  } catch (error) {
    throw new ListenError(setting, address, error);
  }
}

export function hostPort(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}
