import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { EchoServiceClient, EchoServiceService } from '@backplane/proto/echo';
import { status } from '@grpc/grpc-js';
import { clientCredentials, service, unary } from '../src';
import { healthCheck, startTestService, tempDir } from '../src/testing';

/** A CA, and a server and a client certificate it signed, made with openssl in a temp dir. */
function makeCerts(dir: string) {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  run(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=test-ca',
  );
  for (const who of ['server', 'client']) {
    run(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${who}.key`,
      '-out',
      `${who}.csr`,
      '-subj',
      `/CN=${who}`,
    );
    execFileSync('sh', ['-c', `printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > ${who}.ext`], {
      cwd: dir,
    });
    run(
      'x509',
      '-req',
      '-in',
      `${who}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${who}.pem`,
      '-days',
      '1',
      '-extfile',
      `${who}.ext`,
    );
  }
  const p = (f: string) => join(dir, f);
  return {
    ca: p('ca.pem'),
    serverCert: p('server.pem'),
    serverKey: p('server.key'),
    clientCert: p('client.pem'),
    clientKey: p('client.key'),
  };
}

describe('startService with TLS', () => {
  const dir = tempDir();
  const certs = makeCerts(dir.path);
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
