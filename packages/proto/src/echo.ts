export * from './gen/backplane/echo/v1/echo';
