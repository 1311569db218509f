import { NamingServiceClient } from '@backplane/proto/naming';
import { BackplaneError, type PeerAccess, PLAIN_PEER, unary } from '@backplane/runtime';
import { bindingFromProto } from './convert';
import type { ParentResolver, Resolution } from './registry';

/** Delegates misses to a parent name server (another process), in its `scope`. */
export class ParentNameServer implements ParentResolver {
  private readonly client: NamingServiceClient;

  constructor(
    private readonly address: string,
    private readonly scope: string,
    private readonly timeoutMs = 5000,
    private readonly peer: PeerAccess = PLAIN_PEER,
  ) {
    this.client = new NamingServiceClient(address, peer.credentials);
  }

  async resolve(
    name: string,
    expectedType: string,
    call: { deadline?: number; signal?: AbortSignal } = {},
  ): Promise<Resolution> {
    // the caller's deadline when it is sooner than ours; its cancellation cancels the delegation
    const left = call.deadline === undefined ? this.timeoutMs : Math.max(1, call.deadline - Date.now());
    try {
      const res = await unary(
        this.client.resolve.bind(this.client),
        { scope: this.scope, name, expectedType },
        { timeoutMs: Math.min(this.timeoutMs, left), signal: call.signal, metadata: this.peer.metadata },
      );
      if (!res.binding)
        throw BackplaneError.unavailable(`parent name server ${this.address} sent an empty answer`);
      return { binding: bindingFromProto(res.binding), nameServer: res.nameServer || this.address };
    } catch (err) {
      const e = BackplaneError.from(err);
      if (e.code === 14 || e.code === 4) {
        throw BackplaneError.unavailable(`parent name server ${this.address} is unreachable: ${e.message}`, {
          cause: e,
        });
      }
      throw e;
    }
  }

  close(): void {
    this.client.close();
  }
}
