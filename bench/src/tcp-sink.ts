// Baseline for bulk transfers: a TCP server that reads and discards everything, then reports the count.
import { createServer } from 'node:net';

const server = createServer((socket) => {
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
