import { join } from 'node:path';
import { undocumentedSettings } from '@backplane/runtime/testing';
import { dsSettings, parseServices } from '../src';

describe('README configuration table', () => {
  it('documents every setting with its env var and flag', () => {
    expect(undocumentedSettings(join(__dirname, '..', '..', '..', 'README.md'), dsSettings)).toEqual([]);
  });
});

describe('parseServices', () => {
  it('reads name=[host:]port lists and names the bad entry', () => {
    expect(parseServices('default=7410, web=0.0.0.0:8080,v6=[::1]:9', '127.0.0.1')).toEqual(
      new Map([
        ['default', { host: '127.0.0.1', port: 7410 }],
        ['web', { host: '0.0.0.0', port: 8080 }],
        ['v6', { host: '::1', port: 9 }],
      ]),
    );
    expect(() => parseServices('default', '127.0.0.1')).toThrow(/BACKPLANE_DS_SERVICES entry "default"/);
    expect(() => parseServices('x=70000', '127.0.0.1')).toThrow(/expected name=\[host:\]port/);
    expect(() => parseServices(' , ', '127.0.0.1')).toThrow(/names no service/);
  });
});
