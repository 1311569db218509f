import { emptyOverloadReport, OVERLOAD_FLOORS, overloadProblems } from '../src/overload/run';

/** What the overload runs judge: a collapse under load, or no recovery after it, is a failure. */
describe('overload floors', () => {
  const report = (before: number, during: number, after: number) => ({
    ...emptyOverloadReport('svc', 16),
    before,
    during,
    after,
    waiters: 150,
    waitersRefused: 50,
  });

  it('passes a service that keeps half its rate at 10x load and 80 % after', () => {
    expect(OVERLOAD_FLOORS).toEqual({ during: 0.5, recovery: 0.8 });
    expect(overloadProblems(report(1000, 500, 800))).toEqual([]);
  });

  it('fails a service whose rate collapses under 10x load, though it answers some calls', () => {
    expect(overloadProblems(report(1000, 300, 1000))).toEqual([
      'svc: 300 ops/s at 10× load, below 50 % of 1000 before',
    ]);
  });

  it('fails a service that recovers to less than 80 % of its rate before', () => {
    expect(overloadProblems(report(1000, 900, 700))).toEqual([
      'svc: recovered to 700 ops/s, below 80 % of 1000',
    ]);
  });

  it('fails a run that measured nothing before the load', () => {
    expect(overloadProblems(report(0, 0, 0))).toEqual(['svc: nothing was answered before the load']);
  });
});
