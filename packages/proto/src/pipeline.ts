export * from './gen/backplane/pipeline/v1/pipeline';
