// Socket.IO peer: rooms are Socket.IO rooms, and the Redis adapter carries
// each broadcast to the other instances. A client emits "join" with a room
// name, and "edit" with a room name and an edit. Every other member of the
// room receives the edit as an "edit" event.
import http from 'node:http';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import { peerArgs, announceReady } from './args.mjs';

const opts = peerArgs();
const pub = createClient({ url: `redis://127.0.0.1:${opts.redisPort}` });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);

const httpServer = http.createServer();
const io = new Server(httpServer, {
  adapter: createAdapter(pub, sub),
  transports: ['websocket'],
  serveClient: false,
});

io.on('connection', (socket) => {
  socket.on('join', (room) => {
    socket.join(room);
    socket.emit('joined', room);
  });
  socket.on('edit', (room, edit) => {
    socket.to(room).emit('edit', edit);
  });
});

httpServer.listen(opts.port, opts.host, () => announceReady('socketio', opts));
process.on('SIGTERM', () => process.exit(0));
