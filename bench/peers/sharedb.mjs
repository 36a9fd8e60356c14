// ShareDB peer: one json0 document per room in collection "rooms", with
// sharedb-redis-pubsub carrying ops between instances. The database is
// ShareDB's in-memory one, so each instance keeps its own copy of each
// document; ops from other instances still reach every subscriber.
import http from 'node:http';
import { Duplex } from 'node:stream';
import ShareDB from 'sharedb';
import RedisPubSub from 'sharedb-redis-pubsub';
import { WebSocketServer } from 'ws';
import { createClient } from 'redis';
import { peerArgs, announceReady } from './args.mjs';

const opts = peerArgs();
const client = createClient({ url: `redis://127.0.0.1:${opts.redisPort}` });
const observer = client.duplicate();
const backend = new ShareDB({ pubsub: new RedisPubSub({ client, observer }) });

// Wraps a WebSocket as the object-mode stream that ShareDB's agent reads
// JSON messages from and writes them to.
function jsonStream(ws) {
  const stream = new Duplex({
    objectMode: true,
    read() {},
    write(msg, _enc, done) {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg));
      done();
    },
  });
  ws.on('message', (data) => {
    try {
      stream.push(JSON.parse(data));
    } catch {
      ws.close(1003, 'invalid JSON');
    }
  });
  ws.on('close', () => {
    stream.push(null);
    stream.destroy();
  });
  stream.on('error', () => ws.close());
  return stream;
}

const httpServer = http.createServer();
const wss = new WebSocketServer({ server: httpServer });
wss.on('connection', (ws) => backend.listen(jsonStream(ws)));
httpServer.listen(opts.port, opts.host, () => announceReady('sharedb', opts));
process.on('SIGTERM', () => process.exit(0));
