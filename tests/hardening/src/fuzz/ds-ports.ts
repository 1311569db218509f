import { DsAdmin } from '@backplane/ds-client';
import { parseProxyV1 } from '@backplane/ds-coordinator';
import { healthCheck, tempDir } from '@backplane/runtime/testing';
import { ServiceProcess } from '../services';
import { type FrameOutcome, tcpAttack } from './frames';
import type { Random } from './random';
import type { Finding } from './run';

const TOKEN_BYTES = 16;

/** Lines that look like PROXY protocol v1 headers, most of them wrong in one way. */
function proxyLine(rng: Random): string {
  const ip4 = () => Array.from({ length: 4 }, () => String(rng.int(300))).join('.');
  const ip6 = () => Array.from({ length: rng.int(9) }, () => rng.int(0x10000).toString(16)).join(':');
  const fields = [
    rng.pick(['PROXY', 'proxy', 'PROXY ', 'PROX', rng.ascii(5)]),
    rng.pick(['TCP4', 'TCP6', 'UNKNOWN', 'UDP4', '', rng.ascii(4)]),
    rng.pick([ip4(), ip6(), '', rng.ascii(20)]),
    rng.pick([ip4(), ip6(), '']),
    String(rng.int(70_000)),
    String(rng.int(70_000)),
  ].slice(0, 1 + rng.int(7));
  return fields.join(rng.chance(0.9) ? ' ' : rng.pick(['  ', '\t', '']));
}

/**
 * The ds coordinator's raw TCP ports, which gRPC fuzzing never reaches: the data port nodes dial (a
 * 16-byte token, then bytes), the clients' service port, and, on a second coordinator started with
 * BACKPLANE_DS_PROXY_PROTOCOL, the PROXY v1 header parser. Garbage, short and wrong tokens, header
 * floods, connection storms; after each kind, the coordinator must still be healthy.
 */
export async function dsPortAttacks(
  target: ServiceProcess,
  rng: Random,
): Promise<{ attacks: number; findings: Finding[] }> {
  const findings: Finding[] = [];
  let attacks = 0;
  const admin = new DsAdmin(target.address);
  const dataAddress = (await admin.status()).dataAddress;
  admin.close();
  const dataPort = Number(dataAddress.slice(dataAddress.lastIndexOf(':') + 1));
  const servicePort = target.dsServicePort;

  const check = async (what: string, p: ServiceProcess, run: () => Promise<FrameOutcome[]>) => {
    const outcomes = await run();
    attacks += outcomes.length;
    const health = await healthCheck(p.address).catch((e: Error) => e.message);
    if (!p.alive() || health !== 'SERVING')
      findings.push({ method: what, code: 'not serving afterwards', details: String(health), input: -1 });
  };
  const many = (n: number, make: (i: number) => Promise<FrameOutcome>) =>
    Promise.all(Array.from({ length: n }, (_, i) => make(i)));

  await check('data port: garbage', target, () =>
    many(40, (i) => tcpAttack(dataPort, 'data garbage', [rng.bytes(rng.int(4 * TOKEN_BYTES))], 100 + i)),
  );
  await check('data port: wrong tokens and bytes after them', target, () =>
    many(40, () =>
      tcpAttack(dataPort, 'data wrong token', [rng.bytes(TOKEN_BYTES), rng.bytes(rng.int(100_000))], 100),
    ),
  );
  await check('data port: a token in 1-byte pieces, then silence', target, () =>
    many(20, () =>
      tcpAttack(
        dataPort,
        'data slow token',
        Array.from({ length: rng.int(TOKEN_BYTES) }, () => rng.bytes(1)),
        300,
      ),
    ),
  );
  await check('data port: a storm of 300 connections', target, () =>
    many(300, () => tcpAttack(dataPort, 'data storm', [], 0)),
  );
  await check('service port: random bytes from many clients', target, () =>
    many(60, () => tcpAttack(servicePort, 'service bytes', [rng.bytes(rng.int(200_000))], 50)),
  );
  await check('service port: a storm of 300 connections', target, () =>
    many(300, () => tcpAttack(servicePort, 'service storm', [], 0)),
  );

  // PROXY v1 headers over the wire, on a coordinator that expects them
  const dir = tempDir('fuzz-ds-proxy-');
  const proxied = await ServiceProcess.start('ds-coordinator', dir.path, {
    BACKPLANE_DS_PROXY_PROTOCOL: 'true',
  });
  try {
    await check('PROXY v1 headers', proxied, () =>
      many(200, () => {
        const line = rng.chance(0.1) ? rng.ascii(rng.int(300)) : proxyLine(rng);
        const end = rng.pick(['\r\n', '\n', '', '\r\n\r\n']);
        return tcpAttack(
          proxied.dsServicePort,
          'proxy header',
          [Buffer.from(line + end), rng.bytes(rng.int(64))],
          50,
        );
      }),
    );
  } finally {
    await proxied.stop();
    dir.remove();
  }

  // the parser itself: never throws, and accepts only an address of the family it names
  for (let i = 0; i < 20_000; i++) {
    const line = proxyLine(rng);
    attacks += 1;
    try {
      const got = parseProxyV1(line, '127.0.0.1');
      if (got !== undefined && got !== '127.0.0.1' && !/^PROXY TCP[46] /.test(line))
        findings.push({ method: 'parseProxyV1', code: 'accepted', details: line, input: i });
    } catch (err) {
      findings.push({
        method: 'parseProxyV1',
        code: 'threw',
        details: `${line}: ${(err as Error).message}`,
        input: i,
      });
    }
  }
  return { attacks, findings };
}
