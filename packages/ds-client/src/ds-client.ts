import type { Duplex } from 'node:stream';
import { BackplaneError } from '@backplane/client-core';
import { DS_MAX_MESSAGE_BYTES, HandoffReason } from '@backplane/proto/ds';

/** Why a client is at this node (receive_handoff tells). */
export type ArrivalReason = 'connected' | 'application' | 'node-failed' | 'drain';

export function arrivalReason(reason: HandoffReason): ArrivalReason {
  switch (reason) {
    case HandoffReason.HANDOFF_REASON_NODE_FAILED:
      return 'node-failed';
    case HandoffReason.HANDOFF_REASON_DRAIN:
      return 'drain';
    default:
      return 'application';
  }
}

/** How a DsClient checks it still stands for a client at its service. */
export interface ClientOwner {
  /** The client's current stay at this node (changes when it leaves and comes back). */
  epochOf(url: string): number | undefined;
}

/**
 * The seed's ds_client: a shallow copy of what this node knows of one client — its URL, its streams at
 * the time the object was made, and an application message. After the client is handed off (by this
 * object or any other), every method but close() fails with IncorrectState (FAILED_PRECONDITION).
 */
export class DsClient {
  private closed = false;
  private message: Buffer | null;

  /** @internal made by DsService */
  constructor(
    private readonly owner: ClientOwner,
    private readonly url: string,
    private readonly epoch: number,
    private readonly streams: readonly Duplex[],
    message: Buffer | null,
    /** Why the client came: a new connection, or a handoff from `from` for `reason`. */
    readonly arrival: { reason: ArrivalReason; from?: string } = { reason: 'connected' },
  ) {
    this.message = message;
  }

  /** @internal */
  check(): void {
    if (this.closed) throw BackplaneError.incorrectState('this ds_client is closed');
    if (this.owner.epochOf(this.url) !== this.epoch) {
      throw BackplaneError.incorrectState(
        `client ${this.url} is no longer handled here (it was handed off)`,
        {
          reason: 'CLIENT_HANDED_OFF',
        },
      );
    }
  }

  /** @internal the client's stay at the node this object was made for. */
  get stay(): number {
    return this.epoch;
  }

  /** @internal the URL without the state check (for the service's own bookkeeping). */
  get key(): string {
    return this.url;
  }

  /** `ipv6://[address]`; IPv4 clients as IPv4-mapped IPv6. */
  getUrl(): string {
    this.check();
    return this.url;
  }

  /** The client's streams when this object was made (streams served later are not included). */
  getStreams(): Duplex[] {
    this.check();
    return [...this.streams];
  }

  /** The message that goes with the next handoff (at most 1 MiB: BadParameter beyond); null removes it. */
  setMessage(message: Buffer | Uint8Array | string | null): void {
    this.check();
    const bytes =
      message === null ? null : typeof message === 'string' ? Buffer.from(message) : Buffer.from(message);
    if (bytes && bytes.length > DS_MAX_MESSAGE_BYTES) {
      throw BackplaneError.badParameter(
        `handoff message of ${bytes.length} bytes; at most ${DS_MAX_MESSAGE_BYTES}`,
      );
    }
    this.message = bytes;
  }

  /** The message set here or by the node that handed the client off; null when none. */
  getMessage(): Buffer | null {
    this.check();
    return this.message;
  }

  /** @internal the message handoff() sends (no state check: handoff checks). */
  messageForHandoff(): Buffer | null {
    return this.message;
  }

  /** Only this object: the client and its streams are untouched. */
  close(): void {
    this.closed = true;
  }

  toString(): string {
    return this.url;
  }
}
