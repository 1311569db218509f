import { EventKind } from '@backplane/proto/tuplespace';
import { EventHub } from '../src/events';

describe('EventHub', () => {
  it('drops a registration whose caller went away before it started reading', () => {
    const hub = new EventHub();
    const ac = new AbortController();
    hub.subscribe({ fields: [] } as never, [EventKind.EVENT_KIND_WRITE], ac.signal);
    expect(hub.count).toBe(1);
    ac.abort();
    expect(hub.count).toBe(0);
    // already gone when it asks: nothing is registered at all
    hub.subscribe({ fields: [] } as never, [], ac.signal);
    expect(hub.count).toBe(0);
  });
});
