// Hocuspocus peer: one Yjs document per room, with the Redis extension
// relaying updates and awareness between instances. No database extension:
// documents live in memory only.
import { Server } from '@hocuspocus/server';
import { Redis } from '@hocuspocus/extension-redis';
import { peerArgs, announceReady } from './args.mjs';

const opts = peerArgs();
const server = new Server({
  port: opts.port,
  address: opts.host,
  quiet: true,
  stopOnSignals: true,
  extensions: [new Redis({ host: '127.0.0.1', port: opts.redisPort })],
});

await server.listen();
announceReady('hocuspocus', opts);
