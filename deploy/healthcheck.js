// grpc.health.v1 probe for container health checks: exits 0 when the server on 127.0.0.1:<port> is SERVING.
const { healthCheck } = require('@backplane/runtime');

const port = process.argv[2] || process.env.BACKPLANE_PORT || '7000';
healthCheck(`127.0.0.1:${port}`)
  .then((state) => process.exit(state === 'SERVING' ? 0 : 1))
  .catch(() => process.exit(1));
