#!/usr/bin/env node
// Turns the raw results of bench/run.sh into RESULTS.md and an SVG plot of
// p99 delivery latency against delivered events per second.
// Usage: report.mjs OUT_DIR RESULTS_MD SVG_FILE
import fs from 'node:fs';
import path from 'node:path';

const [outDir, resultsPath, svgPath] = process.argv.slice(2);
if (!outDir || !resultsPath || !svgPath) {
  console.error('Usage: report.mjs OUT_DIR RESULTS_MD SVG_FILE');
  process.exit(2);
}
const raw = path.join(outDir, 'raw');
const machine = JSON.parse(fs.readFileSync(path.join(outDir, 'machine.json'), 'utf8'));
const PEERS = ['socketio', 'hocuspocus', 'sharedb'];
const SYSTEMS = ['annolive', ...PEERS, 'echo'];
const NAMES = {
  annolive: 'annolive', socketio: 'Socket.IO + redis-adapter', hocuspocus: 'Hocuspocus + Redis',
  sharedb: 'ShareDB + redis-pubsub', echo: 'raw lws broadcast (no Redis)',
};

/** Parses the JSON files whose names match re, in name order. */
function load(re) {
  return fs.readdirSync(raw).filter((f) => re.test(f)).sort()
    .map((f) => {
      try {
        return JSON.parse(fs.readFileSync(path.join(raw, f), 'utf8'));
      } catch {
        return null;
      }
    }).filter(Boolean);
}

function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

function fmt(x, digits = 0) {
  if (x === null || x === undefined) return 'n/a';
  return Number(x).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function ratio(a, b, digits = 2) {
  return a && b ? `${fmt(a / b, digits)}x` : 'n/a';
}

// ---- the Node driver's fan-out runs ----

/** Returns the step whose delivered rate is closest to the target. */
function stepNear(run, target) {
  let best = null;
  for (const s of run.steps) {
    if (!best || Math.abs(s.delivered_per_s - target) < Math.abs(best.delivered_per_s - target)) best = s;
  }
  return best;
}

function bestStep(run) {
  const passed = run.steps.filter((s) => s.passed);
  return passed.length ? passed[passed.length - 1] : null;
}

const fanout = {};
for (const sys of SYSTEMS) {
  const runs = load(new RegExp(`^fanout-${sys}-\\d+\\.json$`));
  if (!runs.length) continue;
  const near = runs.map((r) => stepNear(r, 49000));
  fanout[sys] = {
    runs,
    max: median(runs.map((r) => r.max_sustained_delivered_per_s)),
    cpuAtMax: median(runs.map((r) => bestStep(r)?.server_cpu_us_per_delivery)),
    p99Near: median(near.map((s) => s?.delivery_ms.p99)),
    ratePerSNear: median(near.map((s) => s?.delivered_per_s)),
    cpuNear: median(near.map((s) => s?.server_cpu_us_per_delivery)),
    lostNear: median(near.map((s) => s?.lost)),
    errors: runs.flatMap((r) => r.error_samples || []).slice(0, 3),
  };
}

// The fan-out shape as run, from annolive's first run.
const shape = fanout.annolive?.runs[0] ?? { rooms: 20, clients: 50, writers: 5, instances: 2 };

const idle = {};
for (const sys of SYSTEMS) {
  const runs = load(new RegExp(`^idle-${sys}-\\d+\\.json$`));
  if (runs.length) idle[sys] = { bytes: median(runs.map((r) => r.bytes_per_connection)), n: runs[0].connections };
}

// ---- the C load generator's runs ----

function lgSummary(prefix) {
  const runs = load(new RegExp(`^${prefix}-\\d+\\.json$`));
  if (!runs.length) return null;
  const m = (f) => median(runs.map(f));
  return {
    runs: runs.length,
    rooms: runs[0].rooms, clients: runs[0].clients, rate: runs[0].rate,
    conns: runs[0].connections,
    joined: m((r) => r.joined),
    events: m((r) => r.events_delivered_per_s),
    acked: m((r) => r.ops_acked_per_s),
    lost: m((r) => Math.max(0, (r.events_expected ?? 0) - (r.events_delivered ?? 0))),
    unacked: m((r) => (r.batches_sent ?? 0) - (r.acked ?? 0)),
    drain: m((r) => r.drain_seconds),
    cpu: m((r) => r.server_cpu_us_per_event),
    d50: m((r) => r.delivery_ms?.p50), d90: m((r) => r.delivery_ms?.p90),
    d99: m((r) => r.delivery_ms?.p99), d999: m((r) => r.delivery_ms?.p999),
    dmax: m((r) => r.delivery_ms?.max),
    a50: m((r) => r.ack_ms?.p50), a99: m((r) => r.ack_ms?.p99),
    rss: m((r) => r.server_peak_rss_kib),
    bytes: m((r) => r.bytes_per_connection),
    joinMs: m((r) => r.join_ms_median),
    joinMin: m((r) => (r.joins?.length ? Math.min(...r.joins.map((j) => j.ms)) : null)),
    snapshot: m((r) => r.snapshot_bytes),
    unknown: m((r) => r.unknown_type),
    errors: runs[0].errors,
  };
}

const lg = {
  fanout: lgSummary('lg-fanout'), max: lgSummary('lg-max'), many: lgSummary('lg-many'),
  big: lgSummary('lg-bigroom'), idle: lgSummary('lg-idle'), echo: lgSummary('lg-echo'),
  scale: [1, 2, 3].map((n) => [n, lgSummary(n === 2 ? 'lg-max' : `lg-scale${n}`)]).filter(([, s]) => s),
};

const redisRuns = load(/^redis-\d+\.json$/);
const redis = {
  fcall: median(redisRuns.map((r) => Number(r.fcall_c50))),
  fcallP16: median(redisRuns.map((r) => Number(r.fcall_c50_p16))),
  publish: median(redisRuns.map((r) => Number(r.publish_c50))),
};

// ---- other load on the machine during the run ----

function otherLoad() {
  const file = path.join(outDir, 'logs', 'load.log');
  if (!fs.existsSync(file)) return null;
  const rows = fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean)
    .map((line) => line.split('\t'));
  const loads = rows.map((r) => Number(r[1])).filter(Number.isFinite);
  const seen = new Map();
  for (const r of rows) {
    for (const part of (r[2] || '').split('; ').filter(Boolean)) {
      const m = /^(\d+)% (.*)$/.exec(part);
      // perf report runs addr2line: that is the benchmark's own load.
      if (!m || m[2].includes('addr2line')) continue;
      const e = seen.get(m[2]) || { samples: 0, cpu: 0 };
      e.samples++;
      e.cpu += Number(m[1]);
      seen.set(m[2], e);
    }
  }
  const busiest = [...seen.entries()].sort((a, b) => b[1].samples * b[1].cpu - a[1].samples * a[1].cpu)
    .slice(0, 6).map(([cmd, e]) => ({ cmd, share: e.samples / rows.length, cpu: e.cpu / e.samples }));
  const busySamples = rows.filter((r) => (r[2] || '').split('; ').some((p) => p && !p.includes('addr2line'))).length;
  return {
    samples: rows.length, busySamples,
    meanLoad: loads.reduce((a, b) => a + b, 0) / (loads.length || 1), maxLoad: Math.max(0, ...loads), busiest,
  };
}

// ---- the plot ----

function svgPlot() {
  const W = 760, H = 420, L = 70, R = 190, T = 30, B = 50;
  const colors = { annolive: '#d62728', socketio: '#1f77b4', hocuspocus: '#2ca02c', sharedb: '#9467bd', echo: '#7f7f7f' };
  const series = Object.entries(fanout).map(([sys, f]) => {
    // The run whose maximum is the median one.
    const run = [...f.runs].sort((a, b) => a.max_sustained_delivered_per_s - b.max_sustained_delivered_per_s)[Math.floor(f.runs.length / 2)];
    return { sys, pts: run.steps.map((s) => [s.delivered_per_s, Math.max(0.1, s.delivery_ms.p99), s.passed]) };
  });
  const xmax = Math.max(10000, ...series.flatMap((s) => s.pts.map((p) => p[0]))) * 1.05;
  const ymin = 0.1, ymax = 10000;
  const x = (v) => L + (v / xmax) * (W - L - R);
  const y = (v) => T + (1 - (Math.log10(Math.min(Math.max(v, ymin), ymax)) - Math.log10(ymin)) /
    (Math.log10(ymax) - Math.log10(ymin))) * (H - T - B);
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="18" font-size="14">Fan-out, ${shape.rooms} rooms x ${shape.clients} members, ${shape.instances} instances: p99 send-to-delivery vs delivered events/s</text>`];
  for (const v of [0.1, 1, 10, 100, 1000, 10000]) {
    out.push(`<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`,
      `<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${v} ms</text>`);
  }
  let step = 10000;
  if (xmax > 200000) step = 50000;
  else if (xmax > 80000) step = 20000;
  for (let v = 0; v <= xmax; v += step) {
    out.push(`<line x1="${x(v)}" x2="${x(v)}" y1="${T}" y2="${H - B}" stroke="#eee"/>`,
      `<text x="${x(v)}" y="${H - B + 16}" text-anchor="middle">${v ? `${v / 1000}k` : '0'}</text>`);
  }
  out.push(`<line x1="${L}" x2="${W - R}" y1="${y(100)}" y2="${y(100)}" stroke="#999" stroke-dasharray="4 3"/>`,
    `<text x="${W - R - 4}" y="${y(100) - 4}" text-anchor="end" fill="#666">100 ms limit</text>`,
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">delivered events per second</text>`);
  series.forEach(({ sys, pts }, i) => {
    const c = colors[sys] || '#000';
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ')}"/>`);
    for (const p of pts) {
      out.push(`<circle cx="${x(p[0]).toFixed(1)}" cy="${y(p[1]).toFixed(1)}" r="3.5" fill="${p[2] ? c : 'white'}" stroke="${c}"/>`);
    }
    out.push(`<rect x="${W - R + 12}" y="${T + i * 20}" width="12" height="12" fill="${c}"/>`,
      `<text x="${W - R + 30}" y="${T + i * 20 + 10}">${NAMES[sys]}</text>`);
  });
  out.push(`<text x="${W - R + 12}" y="${T + series.length * 20 + 14}" fill="#666">open dot: step failed</text>`, '</svg>');
  return `${out.join('\n')}\n`;
}

// ---- the page ----

function targetRows() {
  const a = fanout.annolive, s = fanout.socketio;
  const rows = [];
  const row = (name, value, met) => rows.push(`| ${name} | ${value} | ${met === null ? 'n/a' : met ? 'met' : 'not met'} |`);
  row('server CPU per delivered event <= 1 us (Node driver, at its max step)', a ? `${fmt(a.cpuAtMax, 2)} us` : 'n/a', a?.cpuAtMax != null ? a.cpuAtMax <= 1 : null);
  row('same, C load generator at ~49k delivered/s', lg.fanout ? `${fmt(lg.fanout.cpu, 2)} us` : 'n/a', lg.fanout ? lg.fanout.cpu <= 1 : null);
  row('max delivered/s >= 2x Socket.IO with the same driver', a && s ? `${fmt(a.max)} vs ${fmt(s.max)} (${ratio(a.max, s.max)})` : 'n/a', a?.max && s?.max ? a.max >= 2 * s.max : null);
  row('>= 500k delivered/s with the C load generator', lg.max ? fmt(lg.max.events) : 'n/a', lg.max ? lg.max.events >= 500000 : null);
  row('p99 send-to-delivery <= 2 ms at ~49k delivered/s (C load generator)', lg.fanout ? `${fmt(lg.fanout.d99, 2)} ms at ${fmt(lg.fanout.events)}/s` : 'n/a', lg.fanout ? lg.fanout.d99 <= 2 : null);
  const bestAcked = Math.max(lg.many?.acked || 0, lg.max?.acked || 0);
  row("ops acked/s >= half of Redis' rate for the apply-shaped script", `${fmt(bestAcked)} vs ${fmt(redis.fcall)} (${ratio(bestAcked, redis.fcall)})`, redis.fcall ? bestAcked >= redis.fcall / 2 : null);
  row('idle memory <= 4 KB per connection at 10k+ connections', lg.idle ? `${fmt(lg.idle.bytes)} B at ${fmt(lg.idle.joined)} connections` : 'n/a', lg.idle ? lg.idle.bytes <= 4096 && lg.idle.joined >= 10000 : null);
  row('join of a 5,000-polygon room < 50 ms on a warm instance', lg.big ? `${fmt(lg.big.joinMin, 1)} ms fastest, ${fmt(lg.big.joinMs, 1)} ms median` : 'n/a', lg.big ? lg.big.joinMin < 50 : null);
  return rows;
}

function page() {
  const m = machine;
  const L = [];
  const reps = m.reps;
  L.push('# annolive benchmark results', '');
  L.push(`Written by \`bench/run.sh${m.quick ? ' --quick' : ''}\` on ${m.date}; each figure is the median of ${reps} run${reps > 1 ? 's' : ''} unless it says otherwise. Servers, Redis and the load generators share the same cores, so server CPU time per delivered event is the fairest figure to compare servers by.`, '');

  L.push('## Machine', '');
  L.push(`- ${m.nproc} cores, ${m.cpu}, ${m.ram_gib} GiB RAM, Linux ${m.kernel}`);
  L.push(`- Node ${m.node}, Redis ${m.redis}, libwebsockets ${m.lws}, libuv ${m.libuv}, hiredis ${m.hiredis}, gcc ${m.gcc}; annolive at ${m.annolive_commit}`);
  L.push(`- Load average at the start: ${m.loadavg_start.join(', ')}.`);
  const other = otherLoad();
  if (other && other.samples) {
    L.push(`- Load during the run, sampled ${other.samples} times: 1-minute load average ${fmt(other.meanLoad, 1)} on average and ${fmt(other.maxLoad, 1)} at most.`);
    if (other.busySamples) {
      L.push(`- **Other processes were running during the run**: in ${other.busySamples} of ${other.samples} samples a process outside the benchmark used 10 % of a core or more. The busiest:`);
      for (const b of other.busiest) L.push(`  - \`${b.cmd}\`: seen in ${fmt(b.share * 100)} % of the samples, ${fmt(b.cpu)} % of a core on average then`);
      L.push('  So the absolute figures are lower, and the latencies higher, than on an idle machine; figures taken in the same run compare fairly only as far as the load stayed even.');
    } else {
      L.push('- No process outside the benchmark used 10 % of a core or more in any sample.');
    }
  }
  L.push('');

  L.push('## annolive against its peers (same Node driver, same run)', '');
  L.push(`The workload of the peer measurements: ${shape.rooms} rooms x ${shape.clients} WebSocket members spread over ${shape.instances} instances on one Redis, ${shape.writers} writers per room. Each edit is a ~150-byte JSON object with its send time, delivered to the ${shape.clients - 1} other members. After a 2-second warm-up, rates rise step by step (${shape.driver?.argv.match(/--rates (\S+)/)?.[1] ?? 'see Commands'} edits/s per writer). A step passes when nothing is lost and p99 send-to-delivery stays under 100 ms. One Node process drives every server with the \`ws\` package, so its own CPU limits the top steps for every server alike.`, '');
  L.push('| server | max sustained delivered/s | server CPU per delivery at max | p99 delivery near 49k/s | delivered/s of that step | lost there | CPU per delivery there | idle memory per connection |');
  L.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const sys of SYSTEMS) {
    const f = fanout[sys];
    if (!f) continue;
    L.push(`| ${NAMES[sys]} | ${fmt(f.max)} | ${fmt(f.cpuAtMax, 1)} us | ${fmt(f.p99Near, 1)} ms | ${fmt(f.ratePerSNear)} | ${fmt(f.lostNear)} | ${fmt(f.cpuNear, 1)} us | ${idle[sys] ? `${fmt(idle[sys].bytes)} B` : 'n/a'} |`);
  }
  L.push('', `Idle memory: ${idle.annolive?.n ? fmt(idle.annolive.n) : 'n/a'} idle members in rooms of 10 on one instance, resident memory growth divided by connections, measured once per server.${idle.echo ? ` The raw libwebsockets broadcast server, with annolive's libwebsockets set-up and no state of its own, takes ${fmt(idle.echo.bytes)} B per idle connection: the floor of the library.` : ''}`, '');

  L.push('Ratios of annolive to each peer (same run):', '');
  L.push('| peer | fan-out throughput (annolive / peer) | p99 delivery near 49k/s (peer / annolive) | CPU per delivery near 49k/s (peer / annolive) | idle memory per connection (peer / annolive) |');
  L.push('| --- | ---: | ---: | ---: | ---: |');
  const a = fanout.annolive;
  for (const p of PEERS) {
    const f = fanout[p];
    if (!f || !a) continue;
    L.push(`| ${NAMES[p]} | ${ratio(a.max, f.max)} | ${ratio(f.p99Near, a.p99Near)} | ${ratio(f.cpuNear, a.cpuNear)} | ${ratio(idle[p]?.bytes, idle.annolive?.bytes)} |`);
  }
  L.push('', 'Hocuspocus sends Yjs state, not history, so an edit overwritten before a member received it can be skipped; its lost edits are reported in the raw results but do not fail a step.', '');
  L.push('![p99 delivery latency against delivered events per second](fanout.svg)', '');

  const errs = Object.entries(fanout).filter(([, f]) => f.errors.length);
  if (errs.length) {
    L.push('Errors the driver saw (first few):', '');
    for (const [sys, f] of errs) L.push(`- ${sys}: ${f.errors.map((e) => `\`${e}\``).join(', ')}`);
    L.push('');
  }

  L.push('## annolive with the C load generator', '');
  L.push('`annolive-loadgen` sends op batches of one op with a mix of 10 % creates (boxes and polygons with the vertex counts of the COCO sample), 50 % moves, 20 % relabels, 5 % deletes and 15 % presence updates; every member records send-to-ack and send-to-delivery latency. Server CPU is divided by the events and presence updates delivered.', '');
  L.push('Rates count deliveries until the last one arrived, so a run that fell behind is not credited with its backlog. "Undelivered" and "unacked" count the events and batches still missing 5 s after sending stopped: in a run that fell behind they are late, not necessarily lost.', '');
  L.push('| scenario | connections | events delivered/s | ops acked/s | undelivered / unacked | server CPU per delivered message | delivery p50 / p90 / p99 / p99.9 / max (ms) | ack p50 / p99 (ms) | server peak RSS |');
  L.push('| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |');
  const lgRow = (name, s) => {
    if (!s) return;
    L.push(`| ${name} | ${fmt(s.joined)} | ${fmt(s.events)} | ${fmt(s.acked)} | ${fmt(s.lost)} / ${fmt(s.unacked)} | ${fmt(s.cpu, 2)} us | ${[s.d50, s.d90, s.d99, s.d999, s.dmax].map((v) => fmt(v, 2)).join(' / ')} | ${fmt(s.a50, 2)} / ${fmt(s.a99, 2)} | ${fmt((s.rss || 0) / 1024, 1)} MiB |`);
  };
  const lgShape = (s) => (s ? `${fmt(s.rooms)} x ${fmt(s.clients)}, ${fmt(s.rate)} msg/s per writer` : '');
  lgRow(`fan-out ${lgShape(lg.fanout)}`, lg.fanout);
  lgRow(`fan-out ${lgShape(lg.max)}`, lg.max);
  lgRow(`many rooms: ${lgShape(lg.many)}, every member writes`, lg.many);
  for (const [n, s] of lg.scale) lgRow(`scale-out: ${n} instance${n > 1 ? 's' : ''}, fan-out ${lgShape(s)}`, s);
  lgRow(`raw lws broadcast server (no Redis), fan-out ${lgShape(lg.echo)}, moves only`, lg.echo);
  L.push('');
  if (lg.fanout?.unknown) L.push(`The server answered the presence updates with \`unknown_type\` (${fmt(lg.fanout.unknown)} per run in the first row): presence is not in the measured build, so those updates cost a decode and an error reply each.`, '');
  if (lg.big) L.push(`Big room: one image with ${fmt(load(/^lg-bigroom-\d+\.json$/)[0]?.objects)} polygons. Snapshot ${fmt(lg.big.snapshot)} bytes; a join (join sent to the last byte of the snapshot) takes ${fmt(lg.big.joinMin, 1)} ms at best and ${fmt(lg.big.joinMs, 1)} ms in the median, over 6 joins alternating between the instance that loaded the room and the other.`, '');
  if (lg.idle) L.push(`Idle connections: ${fmt(lg.idle.joined)} members in rooms of 10 on one instance: ${fmt(lg.idle.bytes)} bytes of resident memory per connection.`, '');

  L.push('## Machine limits', '');
  L.push(`- Redis, a compare-and-set function of the apply's shape (HGET, HSET, INCR, XADD MAXLEN ~, PUBLISH of a 150-byte payload) through FCALL, 50 connections: ${fmt(redis.fcall)} calls/s without pipelining, ${fmt(redis.fcallP16)} pipelined by 16; a bare PUBLISH: ${fmt(redis.publish)}/s (redis-benchmark).`);
  if (lg.echo) L.push(`- The raw libwebsockets broadcast server (bench/echo: no Redis, no decoding) under the C load generator's fan-out at ${fmt(lg.echo.rate)} msg/s per writer: ${fmt(lg.echo.events)} delivered/s at ${fmt(lg.echo.cpu, 2)} us of server CPU per delivered message, delivery p99 ${fmt(lg.echo.d99, 1)} ms.`);
  L.push('');

  L.push('## Targets', '');
  L.push('| target | measured | |', '| --- | --- | --- |', ...targetRows(), '');

  L.push('## Profiles of annolive', '');
  L.push('`perf record -F 299 --call-graph dwarf` on both instances; the tables sum the two.', '');
  const profiles = [['fanout', 'the fan-out load of the max row'], ['many', 'the many-rooms load']];
  for (const [name, what] of profiles) {
    const file = (kind) => path.join(outDir, `perf-${name}-${kind}.txt`);
    const text = (kind) => (fs.existsSync(file(kind)) ? fs.readFileSync(file(kind), 'utf8').trimEnd() : '');
    if (!text('top')) {
      L.push(`No profile under ${what}: perf was not available.`, '');
      continue;
    }
    L.push(`### Under ${what}`, '');
    L.push('Self time by library:', '', '```', ...text('dso').split('\n'), '```', '');
    L.push('Self time by symbol (above 0.7 %):', '', '```', ...text('top').split('\n').slice(0, 25), '```', '');
    if (text('children')) {
      L.push('Time including callees, user-space symbols that resolved (above 2 %):', '');
      L.push('```', ...text('children').split('\n').slice(0, 25), '```', '');
    }
  }

  const plan = path.join(path.dirname(resultsPath), 'plan.md');
  if (fs.existsSync(plan)) L.push(fs.readFileSync(plan, 'utf8').trimEnd(), '');

  L.push('## Commands', '');
  L.push('```', `bench/run.sh${m.quick ? ' --quick' : ''} --reps ${reps}`);
  const d = fanout.annolive?.runs[0]?.driver?.argv;
  if (d) L.push(`node bench/driver/driver.mjs ${d.replace(/--urls \S+ --pids \S+ --redis-pid \S+ /, '--urls URLS --pids PIDS --redis-pid PID ')}`);
  L.push('annolive --listen 127.0.0.1:PORT --redis redis://127.0.0.1:PORT --no-auth --rate-ops 1000000 --rate-burst 1000000 --max-conns-per-ip 100000');
  L.push('```', '', 'The per-scenario arguments are in `configure()` of bench/run.sh; raw JSON of every run is kept in the output folder that run.sh names.', '');
  return `${L.join('\n')}\n`;
}

fs.writeFileSync(svgPath, svgPlot());
fs.writeFileSync(resultsPath, page());
console.log(`report: wrote ${resultsPath} and ${svgPath}`);
