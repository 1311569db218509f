import { SharingConnection } from '../src/connection';

const unavailable = (details: string) => Object.assign(new Error(details), { code: 14, details });

/** Which failures a call is tried again after (no server: the call function stands in for the node). */
describe('SharingConnection.withFailover', () => {
  const conn = new SharingConnection('boot@127.0.0.1:1,127.0.0.1:2');
  afterAll(() => conn.close());

  it('tries a plain write again on another node when the node went away', async () => {
    let calls = 0;
    const out = await conn.withFailover(async () => {
      if (++calls === 1) throw unavailable('Connection dropped');
      return 'ok';
    });
    expect({ out, calls }).toEqual({ out: 'ok', calls: 2 });
  });

  it('tries a conditional write again only when it never reached a node', async () => {
    let calls = 0;
    const out = await conn.withFailover(async () => {
      if (++calls === 1) throw unavailable('No connection established. Last error: connect ECONNREFUSED');
      return 'ok';
    }, true);
    expect({ out, calls }).toEqual({ out: 'ok', calls: 2 });

    calls = 0;
    const err = await conn
      .withFailover(async () => {
        calls++;
        throw unavailable('Connection dropped');
      }, true)
      .catch((e: unknown) => e);
    expect(calls).toBe(1);
    expect(err).toMatchObject({ code: 14, reason: 'OUTCOME_UNKNOWN' });
  });
});
