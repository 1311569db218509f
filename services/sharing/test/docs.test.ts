import { join } from 'node:path';
import { undocumentedSettings } from '@backplane/runtime/testing';
import { sharingSettings } from '../src';

describe('README configuration table', () => {
  it('documents every setting with its env var and flag', () => {
    expect(undocumentedSettings(join(__dirname, '..', '..', '..', 'README.md'), sharingSettings)).toEqual([]);
  });
});
