import { type CallOptions, serverStream, unary } from '@backplane/client-core';
import {
  type ClientInfo,
  CoordinatorServiceClient,
  type DrainResponse,
  type StatusResponse,
} from '@backplane/proto/ds';
import { type ChannelCredentials, credentials as grpcCredentials, type Metadata } from '@grpc/grpc-js';
import { DEFAULT_COORDINATOR } from './ds-service';

/** The coordinator's operator view: nodes, clients, drain (what `backplane ds …` uses). */
export class DsAdmin {
  private readonly stub: CoordinatorServiceClient;

  constructor(
    address = process.env.BACKPLANE_DS_COORDINATOR ?? DEFAULT_COORDINATOR,
    private readonly options: { credentials?: ChannelCredentials; metadata?: Metadata } = {},
  ) {
    this.stub = new CoordinatorServiceClient(
      address,
      options.credentials ?? grpcCredentials.createInsecure(),
    );
  }

  private opts(opts: CallOptions): CallOptions {
    return this.options.metadata && !opts.metadata ? { ...opts, metadata: this.options.metadata } : opts;
  }

  /** Services, nodes with their clients, streams, bytes relayed and handoff latency. */
  status(opts: CallOptions = {}): Promise<StatusResponse> {
    return unary(this.stub.status.bind(this.stub), {}, this.opts(opts));
  }

  async clients(
    filter: { name?: string; nodeUrl?: string } = {},
    opts: CallOptions = {},
  ): Promise<ClientInfo[]> {
    const res = await unary(
      this.stub.listClients.bind(this.stub),
      { name: filter.name ?? '', nodeUrl: filter.nodeUrl ?? '' },
      this.opts(opts),
    );
    return res.clients;
  }

  /** Hands every client of a node away, perSecond at a time; yields each client moved (or why not). */
  drain(
    nodeUrl: string,
    perSecond = 0,
    opts: CallOptions = {},
  ): AsyncGenerator<DrainResponse, void, undefined> {
    return serverStream(this.stub.drain.bind(this.stub), { nodeUrl, perSecond }, this.opts(opts));
  }

  close(): void {
    this.stub.close();
  }
}
