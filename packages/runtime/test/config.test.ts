import { ConfigError, commonSettings, describeConfig, loadConfig, parseHostPort, settings } from '../src';

describe('loadConfig', () => {
  const spec = {
    ...commonSettings({ port: 7000, service: 'demo' }),
    graceMs: settings.int('BACKPLANE_GRACE_MS', 'grace period', 1000, 0, 60_000),
  };

  it('uses defaults when nothing is set', () => {
    const cfg = loadConfig(spec, { env: {}, argv: [] });
    expect(cfg).toMatchObject({
      host: '127.0.0.1',
      port: 7000,
      dataDir: './data/demo',
      graceMs: 1000,
      nameServer: '127.0.0.1:7000',
    });
    expect(cfg.tlsCert).toBeUndefined();
  });

  it('reads BACKPLANE_* env vars, and flags override them', () => {
    const cfg = loadConfig(spec, {
      env: { BACKPLANE_PORT: '7100', BACKPLANE_GRACE_MS: '5' },
      argv: ['--port', '7200'],
    });
    expect(cfg.port).toBe(7200);
    expect(cfg.graceMs).toBe(5);
    expect(loadConfig(spec, { env: {}, argv: ['--grace-ms=7'] }).graceMs).toBe(7);
  });

  it('lets an empty name server address mean "none"', () => {
    expect(loadConfig(spec, { env: { BACKPLANE_NAMESERVER: '' }, argv: [] }).nameServer).toBeUndefined();
  });

  it('names the bad setting and what is allowed', () => {
    expect(() => loadConfig(spec, { env: { BACKPLANE_PORT: 'seventy' }, argv: [] })).toThrow(
      /invalid BACKPLANE_PORT .*must be a port 0-65535/,
    );
    expect(() => loadConfig(spec, { env: {}, argv: ['--grace-ms', '-1'] })).toThrow(
      /invalid --grace-ms .*between 0 and 60000/,
    );
    expect(() => loadConfig(spec, { env: { BACKPLANE_LOG_LEVEL: 'loud' }, argv: [] })).toThrow(
      /must be one of trace/,
    );
    expect(() => loadConfig(spec, { env: { BACKPLANE_NAMESERVER: 'nohost' }, argv: [] })).toThrow(
      /BACKPLANE_NAMESERVER/,
    );
    expect(() => loadConfig(spec, { env: {}, argv: ['--no-such-flag'] })).toThrow(ConfigError);
  });

  it('documents every setting', () => {
    const table = describeConfig(spec);
    expect(table).toContain('`BACKPLANE_PORT` | `--port` | `7000`');
    expect(table).toContain('BACKPLANE_GRACE_MS');
  });
});

describe('parseHostPort', () => {
  it('accepts hosts, IPv4 and bracketed IPv6', () => {
    expect(parseHostPort('localhost:1')).toEqual({ host: 'localhost', port: 1 });
    expect(parseHostPort('[::1]:7000')).toEqual({ host: '::1', port: 7000 });
  });
  it('rejects missing or out-of-range ports', () => {
    expect(() => parseHostPort('127.0.0.1')).toThrow();
    expect(() => parseHostPort('127.0.0.1:70000')).toThrow();
    expect(() => parseHostPort('127.0.0.1:0')).toThrow();
  });
});
