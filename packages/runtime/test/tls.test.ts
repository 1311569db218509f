import { join } from 'node:path';
import { EchoServiceClient, EchoServiceService } from '@backplane/proto/echo';
import { status } from '@grpc/grpc-js';
import { clientCredentials, service, unary } from '../src';
import { healthCheck, makeTestCertificates, startTestService, tempDir } from '../src/testing';

describe('startService with TLS', () => {
  const dir = tempDir();
  const certs = makeTestCertificates(dir.path);
  afterAll(() => dir.remove());

  const echo = service(EchoServiceService, { echo: async (req) => ({ payload: req.payload }) });

  it('serves TLS clients and refuses plaintext ones', async () => {
    const running = await startTestService({
      name: 'echo',
      services: [echo],
      tls: { cert: certs.serverCert, key: certs.serverKey },
    });
    const secure = new EchoServiceClient(running.address, clientCredentials({ ca: certs.ca }));
    const plain = new EchoServiceClient(running.address, clientCredentials(false));
    try {
      const res = await unary(secure.echo.bind(secure), { payload: Buffer.from('over tls') });
      expect(res.payload.toString()).toBe('over tls');
      await expect(
        unary(plain.echo.bind(plain), { payload: Buffer.from('x') }, { timeoutMs: 2000 }),
      ).rejects.toMatchObject({
        code: status.UNAVAILABLE,
      });
      await expect(healthCheck(running.address, '', clientCredentials({ ca: certs.ca }))).resolves.toBe(
        'SERVING',
      );
    } finally {
      secure.close();
      plain.close();
      await running.close();
    }
  });

  it('requires a client certificate signed by the CA when one is configured (mutual TLS)', async () => {
    const running = await startTestService({
      name: 'echo',
      services: [echo],
      tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.ca },
    });
    const withCert = new EchoServiceClient(
      running.address,
      clientCredentials({ ca: certs.ca, cert: certs.clientCert, key: certs.clientKey }),
    );
    const withoutCert = new EchoServiceClient(running.address, clientCredentials({ ca: certs.ca }));
    try {
      await expect(unary(withCert.echo.bind(withCert), { payload: Buffer.from('m') })).resolves.toBeDefined();
      await expect(
        unary(withoutCert.echo.bind(withoutCert), { payload: Buffer.from('m') }, { timeoutMs: 2000 }),
      ).rejects.toMatchObject({
        code: status.UNAVAILABLE,
      });
    } finally {
      withCert.close();
      withoutCert.close();
      await running.close();
    }
  });

  it('says which file it cannot read', () => {
    expect(() => clientCredentials({ ca: join(dir.path, 'missing.pem') })).toThrow(
      /cannot read TLS CA file .*missing\.pem/,
    );
  });
});
