export * from './gen/backplane/naming/v1/naming';
