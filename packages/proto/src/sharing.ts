export * from './gen/backplane/sharing/v1/sharing';
