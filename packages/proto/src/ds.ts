export * from './gen/backplane/ds/v1/ds';
