import { isIP } from 'node:net';
import { DS_MAX_MESSAGE_BYTES } from '@backplane/proto/ds';
import { BackplaneError } from '@backplane/runtime';

/** Limits of the control plane's names (documented in the proto and the README). */
export const LIMITS = {
  /** Service names and node ids: letters, digits, '-', '_', '.'. */
  maxNameLength: 128,
  /** A handoff message (the seed's saga::buffer). */
  maxMessageBytes: DS_MAX_MESSAGE_BYTES,
} as const;

const NAME = /^[A-Za-z0-9_.-]+$/;

export function validateName(what: 'service name' | 'node id', value: string): string {
  if (!value || value.length > LIMITS.maxNameLength || !NAME.test(value)) {
    throw BackplaneError.badParameter(
      `invalid ${what} ${JSON.stringify(value.slice(0, 200))}: 1-${LIMITS.maxNameLength} characters of A-Z a-z 0-9 - _ .`,
    );
  }
  return value;
}

/** `ipv6://[<address>]`, IPv4 addresses as IPv4-mapped IPv6 (the seed's get_url). */
export function clientUrlOf(address: string): string {
  const bare = address.startsWith('[') ? address.slice(1, -1) : address;
  if (isIP(bare) === 4) return `ipv6://[::ffff:${bare}]`;
  return `ipv6://[${bare.toLowerCase()}]`;
}

/** The client URL's address, for PROXY-protocol and validation. */
export function parseClientUrl(url: string): string {
  // a link-local address keeps its zone (fe80::1%eth0), as the socket reported it
  const m = /^ipv6:\/\/\[([0-9a-fA-F:.]+(?:%[A-Za-z0-9_.~-]{1,64})?)\]$/.exec(url);
  if (!m || isIP(m[1] as string) !== 6) {
    throw BackplaneError.badParameter(
      `invalid client URL ${JSON.stringify(url.slice(0, 200))}: expected ipv6://[<IPv6 address>]`,
    );
  }
  return m[1] as string;
}

export function nodeUrlOf(node: string, name: string): string {
  return `ds://${node}/${name}`;
}

export function parseNodeUrl(url: string): { node: string; name: string } {
  const m = /^ds:\/\/([^/]+)\/([^/]+)$/.exec(url);
  if (!m) {
    throw BackplaneError.badParameter(
      `invalid node URL ${JSON.stringify(url.slice(0, 200))}: expected ds://<node>/<service name>`,
    );
  }
  return {
    node: validateName('node id', m[1] as string),
    name: validateName('service name', m[2] as string),
  };
}
