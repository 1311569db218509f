export * from './gen/backplane/ibp/v1/ibp';
export * from './ibp-wire';
