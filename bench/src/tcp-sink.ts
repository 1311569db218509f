// Baseline for bulk transfers: a TCP server that reads and discards everything, then reports the count.
import { createServer } from 'node:net';

const server = createServer((socket) => {
  // a peer that resets (a proxy's health probe) must not take the sink down
  socket.on('error', () => {});
  let n = 0;
  socket.on('data', (d: Buffer) => {
    n += d.length;
  });
  socket.on('end', () => socket.end(String(n)));
});
server.listen(0, '127.0.0.1', () =>
  console.log(`sink listening on ${(server.address() as { port: number }).port}`),
);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
