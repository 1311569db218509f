import { Writable } from 'node:stream';
import { Metadata } from '@grpc/grpc-js';
import { createLogger, REDACTED_PATHS } from '../src';

describe('createLogger', () => {
  it('hides capabilities, owner secrets, passwords, sessions and tokens up to two levels down and in grpc Metadata', () => {
    let out = '';
    const destination = new Writable({
      write(chunk, _enc, cb) {
        out += chunk.toString();
        cb();
      },
    });
    const log = createLogger({ destination });
    const metadata = new Metadata();
    metadata.set('authorization', 'Bearer very-secret-token');
    metadata.set('x-trace', 'visible');
    log.info({
      readCap: 'ibp://h:1/a#KEY1/READ',
      req: { writeCap: 'ibp://h:1/a#KEY2/WRITE', ownerSecret: 'OWNER1' },
      call: { request: { manageCap: 'ibp://h:1/a#KEY3/MANAGE', password: 'PASS1' } },
      session: 'SESSION1',
      metadata,
    });
    for (const secret of ['KEY1', 'KEY2', 'KEY3', 'OWNER1', 'PASS1', 'SESSION1', 'very-secret-token'])
      expect(out).not.toContain(secret);
    expect(out).toContain('visible');
    expect(out).toContain('[redacted]');
    expect(REDACTED_PATHS).toContain('*.*.readCap');
  });
});
