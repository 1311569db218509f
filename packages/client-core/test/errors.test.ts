import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { BackplaneError, fromServiceError, REASON_KEY } from '../src';

describe('BackplaneError', () => {
  it('maps the seed vocabulary to gRPC codes', () => {
    expect(BackplaneError.of('NOT_FOUND', 'x').code).toBe(status.NOT_FOUND);
    expect(BackplaneError.of('TYPE_MISMATCH', 'x').code).toBe(status.FAILED_PRECONDITION);
    expect(BackplaneError.of('RESOURCE_EXHAUSTED', 'x').code).toBe(status.RESOURCE_EXHAUSTED);
    expect(BackplaneError.of('NO_SUCCESS', 'x').code).toBe(status.UNAVAILABLE);
    expect(BackplaneError.of('AUTHENTICATION_FAILED', 'x').code).toBe(status.UNAUTHENTICATED);
  });

  it('round-trips through a status: reason in trailing metadata', () => {
    const original = new BackplaneError(status.FAILED_PRECONDITION, 'TYPE_MISMATCH', 'wrong type', {
      metadata: { k: 'v' },
    });
    const wire = original.toServiceError();
    expect(wire.metadata.get(REASON_KEY)).toEqual(['TYPE_MISMATCH']);
    const received = Object.assign(new Error(wire.details), wire) as ServiceError;
    const back = fromServiceError(received);
    expect(back).toMatchObject({
      code: status.FAILED_PRECONDITION,
      reason: 'TYPE_MISMATCH',
      message: 'wrong type',
    });
    expect(back.is('TYPE_MISMATCH')).toBe(true);
    expect(back.is(status.FAILED_PRECONDITION)).toBe(true);
  });

  it('turns unknown errors into INTERNAL with the cause kept, and plain statuses into their code name', () => {
    const cause = new Error('boom');
    const e = BackplaneError.from(cause);
    expect(e).toMatchObject({ code: status.INTERNAL, reason: 'INTERNAL' });
    expect(e.cause).toBe(cause);
    const plain = Object.assign(new Error('x'), {
      code: status.UNAVAILABLE,
      details: 'down',
      metadata: new Metadata(),
    });
    expect(BackplaneError.from(plain)).toMatchObject({ reason: 'UNAVAILABLE', message: 'down' });
  });
});
