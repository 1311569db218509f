/**
 * A service's addresses for two audiences, as Kafka's advertised listeners are: programs on its own
 * network (the other containers of a compose project) reach it at its advertise host, programs outside it
 * (the Docker host) at its external host, where its ports are published under the same numbers. A call
 * tells which audience its client belongs to by the address it dialled (HTTP/2 :authority): a client that
 * dialled the advertise host is inside; any other (127.0.0.1, localhost, the host's name) is outside.
 * Without an external host every caller is inside, and nothing changes.
 */
export class Audiences {
  constructor(
    /** The host other containers dial (BACKPLANE_ADVERTISE_HOST). */
    readonly advertiseHost: string,
    /** The host programs outside the service's network dial (BACKPLANE_EXTERNAL_HOST). */
    readonly externalHost?: string | undefined,
  ) {}

  /** Whether the call came from outside: it dialled something other than the advertise host. */
  isExternal(ctx: { authority: string }): boolean {
    return !!this.externalHost && hostOf(ctx.authority) !== this.advertiseHost;
  }

  /** `host:port` (one of this service's addresses) as the caller can dial it. */
  addressFor(ctx: { authority: string }, address: string): string {
    return this.isExternal(ctx) ? withHost(address, this.externalHost as string) : address;
  }
}

/** The host part of an :authority or address (`host:port`, `[v6]:port` or a bare host). */
export function hostOf(authority: string): string {
  const a = authority.trim();
  if (a.startsWith('[')) return a.slice(1, a.indexOf(']'));
  const colon = a.lastIndexOf(':');
  return colon > 0 && a.indexOf(':') === colon ? a.slice(0, colon) : a;
}

/** `address` (host:port) with another host. */
export function withHost(address: string, host: string): string {
  const port = address.slice(address.lastIndexOf(':') + 1);
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}
