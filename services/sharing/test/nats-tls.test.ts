import { makeTestCertificates, startNats, tempDir } from '@backplane/runtime/testing';
import { startSharingServer } from '../src/embedded';

describe('the NATS engine over TLS', () => {
  it('connects to a nats-server that requires TLS and verifies client certificates', async () => {
    const dir = tempDir('sharing-nats-tls-');
    const certs = makeTestCertificates(dir.path);
    const nats = await startNats([
      '--tls',
      '--tlscert',
      certs.serverCert,
      '--tlskey',
      certs.serverKey,
      '--tlscacert',
      certs.ca,
      '--tlsverify',
    ]);
    try {
      // without TLS settings the node cannot connect
      await expect(
        startSharingServer({ port: 0, dataDir: dir.path, natsUrl: nats.url, bucket: 'tls' }),
      ).rejects.toThrow();
      const node = await startSharingServer({
        port: 0,
        dataDir: dir.path,
        natsUrl: nats.url,
        bucket: 'tls',
        natsTls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey },
      });
      try {
        const revision = await node.sharing.put('tls/key', Buffer.from('over TLS'));
        const got = await node.sharing.get('tls/key');
        expect(got?.revision).toBe(revision);
        expect(Buffer.from(got?.value ?? []).toString()).toBe('over TLS');
      } finally {
        await node.close();
      }
    } finally {
      await nats.stop();
      dir.remove();
    }
  }, 60_000);
});
