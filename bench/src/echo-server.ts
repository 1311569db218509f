// The baseline: a bare grpc-js server with the Echo service and nothing else (no runtime wrapper,
// no logging, no health). Prints its port, serves until SIGTERM.

import { EchoServiceService } from '@backplane/proto/echo';
import { Server, ServerCredentials } from '@grpc/grpc-js';

const server = new Server();
server.addService(EchoServiceService, {
  echo: (call: { request: { payload: Buffer } }, cb: (e: null, r: { payload: Buffer }) => void) =>
    cb(null, { payload: call.request.payload }),
});
server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  console.log(`echo listening on ${port}`);
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
