import { type ConnectionOptions, SharingConnection } from './connection';
import { SharedEvents } from './events';
import { SharedProperties } from './properties';

const connections = new Map<string, SharingConnection>();

/**
 * The seed's SharingFactory: SharedEvents and SharedProperties for a bootstrap URL (`boot@host[:port]`),
 * all sharing one connection per URL in the process (the seed's singleton).
 */
export const SharingFactory = {
  connection(url: string, options?: ConnectionOptions): SharingConnection {
    let c = connections.get(url);
    if (!c) {
      c = new SharingConnection(url, options);
      connections.set(url, c);
      // learn the ring in the background; calls work meanwhile through the bootstrap node
      c.refresh({ timeoutMs: 5000 }).catch(() => undefined);
    }
    return c;
  },
  createSharedEvents(url: string, options?: ConnectionOptions): SharedEvents {
    return new SharedEvents(SharingFactory.connection(url, options));
  },
  createSharedProperties(url: string, options?: ConnectionOptions): SharedProperties {
    return new SharedProperties(SharingFactory.connection(url, options));
  },
  /** Closes every connection the factory made (tests, shutdown). */
  closeAll(): void {
    for (const c of connections.values()) c.close();
    connections.clear();
  },
};
