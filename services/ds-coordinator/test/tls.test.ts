import { readFileSync } from 'node:fs';
import { type Socket, connect as tcpConnect } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { DsService, PickFirstHandoffPolicy } from '@backplane/ds-client';
import { clientCredentials } from '@backplane/runtime';
import { makeTestCertificates, tempDir } from '@backplane/runtime/testing';
import { readBytes, startCoordinator, type TestCoordinator } from './helpers';

/**
 * The whole path encrypted: the control plane (gRPC), the data connections nodes open, and (with
 * serviceTls) the clients' own connections, all with mutual TLS; a client's TLS stream survives a handoff.
 */
describe('ds over TLS', () => {
  const dir = tempDir('ds-tls-');
  const certs = makeTestCertificates(dir.path);
  const nodeTls = {
    ca: readFileSync(certs.ca),
    cert: readFileSync(certs.clientCert),
    key: readFileSync(certs.clientKey),
  };
  let c: TestCoordinator;
  const nodes: DsService[] = [];

  beforeAll(async () => {
    c = await startCoordinator({
      tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca },
      serviceTls: true,
    });
  });
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.close(false)));
    await c.stop();
    dir.remove();
  });

  const node = async (policy: PickFirstHandoffPolicy | null = null) => {
    const n = await DsService.create('default', policy, {
      coordinator: c.running.address,
      node: `tls-node-${nodes.length}`,
      credentials: clientCredentials({ ca: certs.ca, cert: certs.clientCert, key: certs.clientKey }),
      dataTls: nodeTls,
    });
    nodes.push(n);
    return n;
  };

  const client = (): Promise<TLSSocket> => {
    const at = c.address.lastIndexOf(':');
    return new Promise((resolve, reject) => {
      const s = tlsConnect(
        { host: c.address.slice(0, at), port: Number(c.address.slice(at + 1)), ...nodeTls },
        () => resolve(s),
      );
      s.once('error', reject);
    });
  };

  it('relays a client TLS stream through TLS data connections and keeps it through a handoff', async () => {
    const a = await node(new PickFirstHandoffPolicy());
    const b = await node();
    const sock = await client();
    sock.write('hello over TLS\n');
    const sa = await a.serve(5000);
    expect((await readBytes(sa, 15)).toString()).toBe('hello over TLS\n');
    sa.write('from A\n');
    expect((await readBytes(sock, 7)).toString()).toBe('from A\n');

    const moving = a.getClient(sa);
    moving.setMessage('state');
    await a.handoffTo(b.url, moving, 10_000);
    const atB = await b.receiveHandoff(10_000);
    const [sb] = atB.getStreams();
    if (!sb) throw new Error('no stream at B');
    sock.write('still here\n');
    expect((await readBytes(sb, 11)).toString()).toBe('still here\n');
    sb.write('from B\n');
    expect((await readBytes(sock, 7)).toString()).toBe('from B\n');
    sock.destroy();
  });

  it('a plaintext client never reaches a node, and a plaintext data connection is dropped', async () => {
    await node();
    const plainClient = await plainSocket(c.address);
    plainClient.write('plaintext hello\n');
    // no node (of the three now attached) gets a stream
    for (const outcome of await Promise.allSettled(nodes.map((n) => n.serve(700))))
      expect(outcome.status).toBe('rejected');
    // a data connection without TLS, even with a token-sized header, is closed by the listener
    const plainData = await plainSocket(c.running.dataAddress);
    plainData.write(Buffer.alloc(16, 1));
    await new Promise((resolve) => plainData.once('close', resolve));
    plainClient.destroy();
  });
});

function plainSocket(address: string): Promise<Socket> {
  const at = address.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host: address.slice(0, at), port: Number(address.slice(at + 1)) }, () =>
      resolve(s),
    );
    s.once('error', reject);
  });
}
