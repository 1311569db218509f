import { join } from 'node:path';
import { JetStreamLog, LocalLog } from '@backplane/replicated';
import {
  Audiences,
  BackplaneError,
  type CallLimits,
  closeNats,
  connectNats,
  jetStreamReady,
  type Logger,
  NatsLink,
  type RunningService,
  silentLogger,
  startService,
  type TlsFiles,
  withHost,
} from '@backplane/runtime';
import type { NatsConnection } from '@nats-io/transport-node';
import { EventStore } from './event-store';
import { importLegacyStore } from './legacy-import';
import { LocalBus } from './local-bus';
import { NatsBus } from './nats-bus';
import { safeConditionalWrites } from './nats-version';
import { ReplicatedProperties } from './replicated-properties';
import { NatsRing, singleNode } from './ring';
import { sharingService } from './server';
import { newNodeId, Sharing } from './sharing';

export interface SharingServerOptions {
  host?: string;
  /** 0 = any free port. */
  port?: number;
  /** The host other processes dial (the ring's addresses); default: the listen host. */
  advertiseHost?: string;
  /** The host programs outside the nodes' network dial (the port published there): the ring tells them. */
  externalHost?: string;
  dataDir: string;
  /** Set: the distributed engine on these NATS servers (comma-separated). */
  natsUrl?: string;
  /** TLS to the NATS servers: their CA, and a client certificate and key if they verify clients. */
  natsTls?: TlsFiles;
  bucket?: string;
  replicas?: number;
  history?: number;
  subjectPrefix?: string;
  /** Embedded engine: fsync every group commit of the log (default true). */
  fsync?: boolean;
  /** NATS engine: keep events this long and offer durable subscriptions (0 or absent: off). */
  eventRetentionS?: number;
  /** Durable subscriptions: redeliver an event not acknowledged this long after delivery (default 30). */
  eventAckWaitS?: number;
  log?: Logger;
  tls?: TlsFiles;
  authToken?: string;
  shutdownTimeoutMs?: number;
  /** Load shedding (default: the runtime's DEFAULT_CALL_LIMITS). */
  limits?: CallLimits;
  maxStreamsPerConnection?: number;
  reapEveryMs?: number;
}

export interface RunningSharingServer extends RunningService {
  readonly sharing: Sharing;
}

/** Starts a sharing node: embedded (level + in-process bus) or, with natsUrl, a node of the NATS ring. */
export async function startSharingServer(options: SharingServerOptions): Promise<RunningSharingServer> {
  const id = newNodeId();
  const bucket = options.bucket ?? 'backplane-sharing';
  let nc: NatsConnection | undefined;
  let link: NatsLink | undefined;
  let sharing: Sharing;
  if (options.natsUrl) {
    nc = await connectNats({
      servers: options.natsUrl,
      name: `backplane-sharing-${id}`,
      tls: options.natsTls,
      log: options.log,
    });
    const conn = nc;
    // a connection that reconnects for ever must be closed when the node cannot start
    const properties = await openNatsProperties(conn, bucket, options)
      .then((p) => {
        link = p.link;
        return p.properties;
      })
      .catch(async (err: unknown) => {
        await closeNats(conn);
        throw err;
      });
    const prefix = options.subjectPrefix ?? 'backplane.events';
    const store = options.eventRetentionS
      ? await EventStore.open(conn, {
          stream: `BP_${bucket}_events`,
          prefix,
          retentionS: options.eventRetentionS,
          replicas: options.replicas ?? 1,
          ackWaitMs: (options.eventAckWaitS ?? 30) * 1000,
          maxUnacked: 1000,
          log: options.log,
        }).catch(async (err: unknown) => {
          link?.stop();
          await properties.close().catch(() => undefined);
          await closeNats(conn);
          throw err;
        })
      : undefined;
    sharing = new Sharing(
      properties,
      new NatsBus(nc, prefix, link, undefined, store),
      singleNode({ id, address: '' }),
    );
  } else {
    const logger = options.log ?? silentLogger();
    const properties = await ReplicatedProperties.open({
      kind: 'embedded',
      log: await LocalLog.open(join(options.dataDir, 'log'), { sync: options.fsync ?? true }),
      history: { changes: options.history },
      logger,
      reapEveryMs: options.reapEveryMs,
    });
    await importLegacyStore(options.dataDir, properties, logger);
    sharing = new Sharing(properties, new LocalBus(), singleNode({ id, address: '' }));
  }
  const host = options.host ?? '127.0.0.1';
  const audiences = new Audiences(
    options.advertiseHost ?? (host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host),
    options.externalHost,
  );
  let running: RunningService | undefined;
  try {
    running = await startService({
      name: 'sharing',
      services: [sharingService(sharing, audiences)],
      host,
      port: options.port ?? 8400,
      log: options.log,
      tls: options.tls,
      authToken: options.authToken,
      shutdownTimeoutMs: options.shutdownTimeoutMs,
      limits: options.limits,
      maxStreamsPerConnection: options.maxStreamsPerConnection,
      onClose: [() => nc && closeNats(nc), () => sharing.close()],
    });
    const served = running;
    // on NATS, NOT_SERVING until the node is in the ring (a supervisor that waits for SERVING, such as
    // `backplane up`, then finds every node it started in Nodes)
    let joined = !nc;
    if (link) {
      // NOT_SERVING while the node has no NATS connection, so supervisors and clients go elsewhere
      // (the properties need JetStream: serving means it answers)
      const following = link;
      link.onChange((state) => served.setServing(state.ready && joined));
      served.setServing(following.ready && joined);
      served.addCloseHook(() => following.stop());
    }
    // leave the ring as soon as shutdown starts, so clients fail over before the node is gone
    served.addShutdownHook(() => sharing.ring.close());
    const address = withHost(`:${served.port}`, audiences.advertiseHost);
    const self = {
      id,
      address,
      ...(options.externalHost ? { external: withHost(address, options.externalHost) } : {}),
    };
    sharing.ring = nc
      ? await NatsRing.join(nc, `${bucket}-nodes`, self, options.log, options.replicas)
      : singleNode(self);
    joined = true;
    if (link) served.setServing(link.ready);
  } catch (err) {
    // a node that cannot start lets go of what it opened (a NATS connection reconnects for ever)
    if (running) await running.close();
    else {
      link?.stop();
      await sharing.close().catch(() => undefined);
      if (nc) await closeNats(nc);
    }
    throw err;
  }
  return Object.assign(running, { sharing });
}

/**
 * The NATS engine: the properties' log is a JetStream stream (BP_<bucket>, the given replicas), and the
 * node reports itself ready while JetStream answers for it.
 */
async function openNatsProperties(
  nc: NatsConnection,
  bucket: string,
  options: SharingServerOptions,
): Promise<{ properties: ReplicatedProperties; link: NatsLink }> {
  const version = nc.info?.version ?? '0.0.0';
  if ((options.replicas ?? 1) > 1 && !safeConditionalWrites(version))
    throw BackplaneError.incorrectState(
      `nats-server ${version} does not replicate streams safely (nats-io/nats-server#4320 and fixes of the ` +
        '2.9.2x releases): use nats-server 2.10 (Debian trixie) or BACKPLANE_SHARING_REPLICAS=1',
      { reason: 'UNSAFE_NATS_SERVER' },
    );
  const log = await JetStreamLog.open({ nc, name: bucket, replicas: options.replicas, log: options.log });
  const link = new NatsLink(nc, { ready: () => jetStreamReady(nc, { stream: `BP_${bucket}` }) });
  try {
    const properties = await ReplicatedProperties.open({
      kind: 'nats',
      log,
      link,
      history: { changes: options.history },
      logger: options.log,
      reapEveryMs: options.reapEveryMs,
    });
    return { properties, link };
  } catch (err) {
    link.stop();
    throw err;
  }
}
