#!/usr/bin/env node
// The shared Node load driver: the same fan-out workload against annolive,
// the raw broadcast server and each peer, through a thin adapter per server
// (adapters/NAME.mjs) that speaks its wire protocol with the `ws` package.
// R rooms of C members are spread over the given server URLs, with W
// writers per room. Each edit is a ~150-byte JSON object with its send time,
// and every other member of the room receives it. Rates rise step by step.
// A step passes when p99 send-to-delivery stays under the limit, no error
// occurs and nothing is lost (for an adapter that coalesces, lost edits are
// only reported). With --idle N it opens N idle members instead and reports the
// servers' memory per connection. Run with --help for the options.
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { execSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { Histogram } from './hist.mjs';

const require = createRequire(new URL('../peers/package.json', import.meta.url));
const WebSocket = require('ws');

const HELP = `Usage: driver.mjs --adapter NAME --urls ws://HOST:PORT[,...] [OPTION]...

  --adapter NAME       annolive, echo, socketio, hocuspocus or sharedb
  --urls LIST          comma-separated server base URLs; room members alternate
  --rooms N            rooms (default 20)
  --clients N          members per room (default 50)
  --writers N          writers per room (default 5)
  --rates LIST         edits per second per writer, one step each (default 2,5,10,20,40)
  --step-seconds S     length of a step (default 10)
  --p99-limit-ms MS    a step fails above this p99 delivery latency (default 100)
  --keep-going         run every step even after one fails
  --idle N             open N idle members (rooms of --clients) and report memory
  --pids LIST          server process ids for CPU time and memory
  --redis-pid PID      Redis' process id, for its CPU time
  --concurrency N      connections opened at once (default 64)
  --json FILE          write the results as JSON to FILE
  --help               print this help
`;

function parseArgs(argv) {
  const o = {
    adapter: '', urls: [], rooms: 20, clients: 50, writers: 5, rates: [2, 5, 10, 20, 40],
    stepSeconds: 10, p99LimitMs: 100, keepGoing: false, idle: 0, pids: [], redisPid: 0,
    concurrency: 64, json: '',
  };
  const list = (v) => v.split(',').filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--adapter': o.adapter = v(); break;
      case '--urls': o.urls = list(v()); break;
      case '--rooms': o.rooms = Number(v()); break;
      case '--clients': o.clients = Number(v()); break;
      case '--writers': o.writers = Number(v()); break;
      case '--rates': o.rates = list(v()).map(Number); break;
      case '--step-seconds': o.stepSeconds = Number(v()); break;
      case '--p99-limit-ms': o.p99LimitMs = Number(v()); break;
      case '--keep-going': o.keepGoing = true; break;
      case '--idle': o.idle = Number(v()); break;
      case '--pids': o.pids = list(v()).map(Number); break;
      case '--redis-pid': o.redisPid = Number(v()); break;
      case '--concurrency': o.concurrency = Number(v()); break;
      case '--json': o.json = v(); break;
      case '--help': process.stdout.write(HELP); process.exit(0); break;
      default: throw new Error(`unknown option ${a} (see --help)`);
    }
  }
  if (!o.adapter || o.urls.length === 0) throw new Error('--adapter and --urls are required');
  return o;
}

// ---- /proc readings ----

const CLK_TCK = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;

/** CPU seconds (user + system) that the processes have used so far. */
export function cpuSeconds(pids) {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // The process is gone; it adds nothing.
    }
  }
  return ticks / CLK_TCK;
}

/** Sums a field of /proc/PID/status (VmRSS, VmHWM) over the pids, in KiB. */
export function statusKiB(pids, field) {
  let kib = 0;
  for (const pid of pids) {
    try {
      const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(
        fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kib += Number(m[1]);
    } catch {
      // The process is gone.
    }
  }
  return kib;
}

// ---- clients ----

class Client {
  constructor(adapter, url, hooks) {
    this.adapter = adapter;
    this.hooks = hooks;
    this.waiting = new Map();
    this.early = new Map();
    this.onClose = null;
    this.ws = new WebSocket(adapter.wsUrl(url), adapter.protocols, { perMessageDeflate: false });
    this.ws.binaryType = 'nodebuffer';
    this.ws.on('message', (data, isBinary) => {
      try {
        adapter.handle(this, isBinary ? data : data.toString());
      } catch (err) {
        hooks.onError(`invalid message from the server: ${err.message}`);
      }
    });
    this.ws.on('close', () => {
      if (this.onClose) this.onClose();
      for (const w of this.waiting.values()) w.reject(new Error('connection closed'));
      this.waiting.clear();
      if (!this.closing) hooks.onError('connection closed by the server');
    });
    this.ws.on('error', (err) => hooks.onError(`socket: ${err.message}`));
  }

  opened() {
    return new Promise((resolve, reject) => {
      this.ws.once('open', () => {
        this.adapter.onOpen(this);
        resolve(this);
      });
      this.ws.once('error', reject);
    });
  }

  send(data) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(data);
  }

  /** Resolves with the value that settle(key) is given, even if it came first. */
  waitFor(key, ms = 30000) {
    if (this.early.has(key)) {
      const value = this.early.get(key);
      this.early.delete(key);
      return Promise.resolve(value);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(key);
        reject(new Error(`no reply for ${key} in ${ms} ms`));
      }, ms);
      this.waiting.set(key, {
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
    });
  }

  settle(key, value) {
    const w = this.waiting.get(key);
    if (w) {
      this.waiting.delete(key);
      w.resolve(value);
    } else if (this.early.size < 64) {
      this.early.set(key, value);
    }
  }

  close() {
    this.closing = true;
    this.ws.terminate();
  }
}

/** Runs fn over items with at most n promises pending at once. */
async function pool(items, n, fn) {
  let next = 0;
  const workers = Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  });
  await Promise.all(workers);
}

// ---- the workload ----

const LABELS = ['person', 'car', 'bicycle', 'traffic light', 'dog', 'umbrella'];

/** Makes a ~150-byte edit: send time, step, writer and number first, then a moved box and a label. */
function makeEdit(step, writer, n) {
  const t = Math.round(performance.now() * 1000) / 1000;
  return {
    t, s: step, k: writer, n,
    geometry: [100 + (n % 50) * 3.25, 80 + (n % 30) * 2.5, 120.5, 96.75],
    label: LABELS[n % LABELS.length],
    note: 'moved by the load driver',
  };
}

class Stats {
  constructor() { this.reset(-1); }

  reset(step) {
    this.step = step;
    this.delivered = 0;
    this.late = 0;
    this.acked = 0;
    this.delivery = new Histogram();
    this.ack = new Histogram();
  }
}

function hooksFor(stats, errors, sendTimes) {
  return {
    onEdit(edit) {
      if (edit.s !== stats.step) {
        stats.late++;
        return;
      }
      stats.delivered++;
      stats.delivery.record((performance.now() - edit.t) * 1000);
    },
    onAck(id) {
      const t = sendTimes.get(id);
      if (t === undefined) return;
      sendTimes.delete(id);
      stats.acked++;
      stats.ack.record((performance.now() - t) * 1000);
    },
    onError(text) {
      errors.count++;
      if (errors.samples.length < 5) errors.samples.push(text);
    },
  };
}

async function openRooms(o, adapter, stats, errors) {
  const members = [];
  for (let r = 0; r < o.rooms; r++) {
    for (let j = 0; j < o.clients; j++) members.push({ room: `bench-${r}`, r, j });
  }
  const open = async (m) => {
    m.sendTimes = new Map();
    const c = new Client(adapter, o.urls[m.j % o.urls.length], hooksFor(stats, errors, m.sendTimes));
    m.client = await c.opened();
    await adapter.join(c, m.room);
  };

  // The first member of a room on each instance joins, and prepares the
  // room there, before the others: ShareDB's pub/sub subscribes to Redis
  // once per concurrent first subscriber of a document and then delivers
  // each op that many times.
  const t0 = performance.now();
  const firsts = members.filter((m) => m.j < o.urls.length);
  await pool(firsts, o.concurrency, open);
  if (adapter.prepareRoom) {
    await pool(firsts, o.concurrency, (m) => adapter.prepareRoom(m.client, m.room));
  }
  await pool(members.filter((m) => m.j >= o.urls.length), o.concurrency, open);
  const joinSeconds = (performance.now() - t0) / 1000;
  const writers = members.filter((m) => m.j < o.writers);
  await pool(writers, o.concurrency, (m) =>
    adapter.prepareWriter(m.client, m.room, `${m.r}-${m.j}`));
  return { members, writers, joinSeconds };
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function runStep(o, adapter, stats, errors, writers, step, rate) {
  const pids = o.pids;
  stats.reset(step);
  const errorsBefore = errors.count;
  const cpu0 = cpuSeconds(pids);
  const redis0 = o.redisPid ? cpuSeconds([o.redisPid]) : 0;
  const driver0 = process.cpuUsage();
  const sent = new Array(writers.length).fill(0);
  const start = performance.now();
  const end = start + o.stepSeconds * 1000;
  let total = 0;

  await new Promise((resolve) => {
    const tick = setInterval(() => {
      const now = Math.min(performance.now(), end);
      const elapsed = (now - start) / 1000;
      writers.forEach((w, i) => {
        // Writers are spread over each period so that they do not send in bursts.
        const due = Math.floor(elapsed * rate + i / writers.length);
        while (sent[i] < due) {
          const edit = makeEdit(step, i, sent[i]);
          const id = adapter.sendEdit(w.client, w.room, edit);
          if (id !== null) w.sendTimes.set(id, edit.t);
          sent[i]++;
          total++;
        }
      });
      if (now >= end) {
        clearInterval(tick);
        resolve();
      }
    }, 2);
  });
  const sendSeconds = (performance.now() - start) / 1000;

  // Wait for the stragglers, at most 3 seconds.
  const expected = total * (o.clients - 1);
  const drainEnd = performance.now() + 3000;
  while (stats.delivered < expected && performance.now() < drainEnd) await sleep(20);
  const elapsed = (performance.now() - start) / 1000;
  const cpu = cpuSeconds(pids) - cpu0;
  const du = process.cpuUsage(driver0);

  const delivery = stats.delivery.summary();
  const lost = Math.max(0, expected - stats.delivered);
  const result = {
    step, rate_per_writer: rate, edits_sent: total,
    edits_per_s: Math.round(total / sendSeconds),
    delivered: stats.delivered, expected, lost,
    delivered_per_s: Math.round(stats.delivered / sendSeconds),
    acked: stats.acked, ack_ms: stats.ack.summary(), delivery_ms: delivery,
    errors: errors.count - errorsBefore,
    server_cpu_s: round(cpu, 3),
    server_cpu_us_per_delivery: stats.delivered ? round((cpu * 1e6) / stats.delivered, 2) : null,
    redis_cpu_s: o.redisPid ? round(cpuSeconds([o.redisPid]) - redis0, 3) : null,
    driver_cpu_s: round((du.user + du.system) / 1e6, 3),
    elapsed_s: round(elapsed, 2),
    server_rss_kib: statusKiB(pids, 'VmRSS'),
  };
  result.passed = (lost === 0 || adapter.coalesces === true) &&
    delivery.p99 <= o.p99LimitMs && result.errors === 0;
  return result;
}

function round(x, digits) {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function printSteps(o, steps) {
  console.log(`adapter ${o.adapter}: ${o.rooms} rooms x ${o.clients} members, ` +
    `${o.writers} writers per room, ${o.urls.length} instance(s)`);
  console.log('rate/w  edits/s  delivered/s     lost  p50ms  p90ms  p99ms p99.9ms  maxms  cpu-us/dlv  pass');
  for (const s of steps) {
    const d = s.delivery_ms;
    console.log([
      String(s.rate_per_writer).padStart(6), String(s.edits_per_s).padStart(8),
      String(s.delivered_per_s).padStart(12), String(s.lost).padStart(8),
      ...[d.p50, d.p90, d.p99, d.p999, d.max].map((v) => v.toFixed(1).padStart(6)),
      String(s.server_cpu_us_per_delivery).padStart(11), s.passed ? '  yes' : '   no',
    ].join(' '));
  }
}

async function runFanout(o, adapter) {
  const stats = new Stats();
  const errors = { count: 0, samples: [] };
  const { members, writers, joinSeconds } = await openRooms(o, adapter, stats, errors);
  await sleep(1000);

  // A short warm-up at the lowest rate, not reported, so that each server
  // (and the JIT of the Node ones) starts the steps warm.
  const stepSeconds = o.stepSeconds;
  o.stepSeconds = Math.min(2, stepSeconds);
  await runStep(o, adapter, stats, errors, writers, 999, o.rates[0]);
  o.stepSeconds = stepSeconds;
  errors.count = 0;
  errors.samples.length = 0;
  await sleep(500);
  const steps = [];
  for (let i = 0; i < o.rates.length; i++) {
    const s = await runStep(o, adapter, stats, errors, writers, i, o.rates[i]);
    steps.push(s);
    if (!s.passed && !o.keepGoing) break;
    await sleep(500);
  }
  const passed = steps.filter((s) => s.passed);
  const best = passed.length ? passed[passed.length - 1] : null;
  const result = {
    mode: 'fanout', adapter: o.adapter, rooms: o.rooms, clients: o.clients, writers: o.writers,
    instances: o.urls.length, join_all_s: round(joinSeconds, 2), steps,
    max_sustained_delivered_per_s: best ? best.delivered_per_s : 0,
    error_samples: errors.samples,
  };
  for (const m of members) m.client.close();
  return result;
}

async function runIdle(o, adapter) {
  const stats = new Stats();
  const errors = { count: 0, samples: [] };
  const before = statusKiB(o.pids, 'VmRSS');
  const rooms = Math.ceil(o.idle / o.clients);
  const members = [];
  for (let i = 0; i < o.idle; i++) members.push({ room: `idle-${i % rooms}` });
  const t0 = performance.now();
  await pool(members, o.concurrency, async (m, i) => {
    const c = new Client(adapter, o.urls[i % o.urls.length], hooksFor(stats, errors, new Map()));
    m.client = await c.opened();
    await adapter.join(c, m.room);
  });
  const connectSeconds = (performance.now() - t0) / 1000;
  await sleep(3000);
  const after = statusKiB(o.pids, 'VmRSS');
  const result = {
    mode: 'idle', adapter: o.adapter, connections: o.idle, rooms,
    connect_s: round(connectSeconds, 2), rss_before_kib: before, rss_after_kib: after,
    bytes_per_connection: Math.round(((after - before) * 1024) / o.idle),
    errors: errors.count, error_samples: errors.samples,
  };
  for (const m of members) m.client.close();
  return result;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const adapter = await import(`./adapters/${o.adapter}.mjs`);
  const result = o.idle ? await runIdle(o, adapter) : await runFanout(o, adapter);
  result.driver = { node: process.version, argv: process.argv.slice(2).join(' ') };
  if (result.mode === 'fanout') printSteps(o, result.steps);
  else console.log(`adapter ${o.adapter}: ${result.connections} idle connections, ` +
    `${result.bytes_per_connection} bytes each (${result.errors} errors)`);
  if (result.error_samples.length) console.log('errors, first few:', result.error_samples);
  if (o.json) fs.writeFileSync(o.json, `${JSON.stringify(result, null, 2)}\n`);
  setTimeout(() => process.exit(0), 200);
}

main().catch((err) => {
  console.error(`driver: error: ${err.message}`);
  process.exit(1);
});
