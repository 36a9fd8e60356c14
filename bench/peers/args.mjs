// Reads the command-line options that every peer server takes:
// --port N (required), --redis-port N (required), --host ADDR (127.0.0.1).
export function peerArgs(argv = process.argv.slice(2)) {
  const opts = { host: '127.0.0.1', port: 0, redisPort: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const [name, value] = [argv[i], argv[i + 1]];
    if (name === '--port') opts.port = Number(value);
    else if (name === '--redis-port') opts.redisPort = Number(value);
    else if (name === '--host') opts.host = value;
    else throw new Error(`unknown option ${name}`);
  }
  if (!opts.port || !opts.redisPort) throw new Error('--port and --redis-port are required');
  return opts;
}

// Prints "ready" once the server listens, which bench/run.sh waits for.
export function announceReady(name, opts) {
  console.log(`ready ${name} ${opts.host}:${opts.port} pid ${process.pid}`);
}
