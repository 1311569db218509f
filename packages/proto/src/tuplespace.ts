export * from './gen/backplane/tuplespace/v1/tuplespace';
