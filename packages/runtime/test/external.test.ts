import { Audiences, hostOf, withHost } from '../src';

describe('Audiences', () => {
  it('treats a caller that dialled the advertise host as inside, any other as outside', () => {
    const a = new Audiences('ibp-depot', '127.0.0.1');
    expect(a.isExternal({ authority: 'ibp-depot:6714' })).toBe(false);
    expect(a.isExternal({ authority: '127.0.0.1:6714' })).toBe(true);
    expect(a.isExternal({ authority: 'localhost:6714' })).toBe(true);
    expect(a.addressFor({ authority: 'ibp-depot:6714' }, 'ibp-depot:7401')).toBe('ibp-depot:7401');
    expect(a.addressFor({ authority: 'localhost:6714' }, 'ibp-depot:7401')).toBe('127.0.0.1:7401');
  });

  it('without an external host, every caller is inside', () => {
    const a = new Audiences('127.0.0.1');
    expect(a.isExternal({ authority: 'localhost:6714' })).toBe(false);
    expect(a.addressFor({ authority: 'elsewhere:1' }, '127.0.0.1:7401')).toBe('127.0.0.1:7401');
  });

  it('reads hosts out of authorities and puts them into addresses, IPv6 included', () => {
    expect(hostOf('name-server:7000')).toBe('name-server');
    expect(hostOf('[::1]:7000')).toBe('::1');
    expect(hostOf('name-server')).toBe('name-server');
    expect(withHost('ibp-depot:6714', '::1')).toBe('[::1]:6714');
    expect(withHost('[fe80::1]:6714', 'h')).toBe('h:6714');
  });
});
