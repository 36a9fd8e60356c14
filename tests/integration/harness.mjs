// Test harness for the integration tests: starts a real redis-server and real
// annolive processes on free loopback ports with a temporary directory, runs
// the client-js command-line tool, makes clients, and stops everything in
// cleanup() even when a test fails. Every wait has a time limit.
//
// Environment:
//   ANNOLIVE_BIN              server binary (default: build/annolive)
//   ANNOLIVE_TEST_LOG_LEVEL   --log-level of the instances (default: info)
//   ANNOLIVE_KEEP_TMP=1       keep the temporary directory after a passing run

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ANNOLIVE_BIN = process.env.ANNOLIVE_BIN ?? path.join(REPO, 'build', 'annolive');
export const CLI = path.join(REPO, 'client-js', 'bin', 'annolive.js');
export const CLIENT_MODULE = path.join(REPO, 'client-js', 'src', 'client.js');
export const SHARED_DATA = path.resolve(REPO, '..', 'shared', 'data');
export const LABELME_EXAMPLES = '/usr/share/doc/labelme-examples/examples';
export const LABELME_COCO = path.join(
  LABELME_EXAMPLES, 'instance_segmentation', 'data_dataset_coco', 'annotations.json');
export const LABELME_BBOX_DIR = path.join(LABELME_EXAMPLES, 'bbox_detection', 'data_annotated');

const LOG_LEVEL = process.env.ANNOLIVE_TEST_LOG_LEVEL ?? 'info';
const READY_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 10000;
const LOG_TAIL_BYTES = 16384;

// The first line of a report of AddressSanitizer, LeakSanitizer or UBSan.
// Only a server built with the sanitizers writes them.
const SANITIZER_REPORT = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|: runtime error: /;

/** Sanitizer reports found in the output of runProcess(), checked by cleanup(). */
const processReports = [];

/** Returns the text of a sanitizer report in text, from its first line on, or null. */
export function sanitizerReport(text) {
  const match = SANITIZER_REPORT.exec(text);
  if (!match) return null;
  const start = text.lastIndexOf('\n', match.index) + 1;
  return text.slice(start, start + 4000);
}

/** Child processes of this test file, killed with SIGKILL if the file exits early. */
const liveChildren = new Set();

function killLiveChildren() {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // The process has exited already.
    }
  }
}

process.on('exit', killLiveChildren);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    killLiveChildren();
    process.exit(1);
  });
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Resolves with null after ms. The timer does not keep the process alive, so
 * a race against it does not delay the exit of the test file.
 */
function nullAfter(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms, null).unref());
}

/**
 * Calls fn until it returns a truthy value and returns that value.
 * Throws `timed out after N ms waiting for WHAT` with fn's last error.
 */
export async function waitUntil(what, fn, { timeoutMs = 10000, intervalMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError = null;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
      lastError = null;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError ? `: last error: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

/** Rejects with `timed out after N ms waiting for WHAT` unless promise settles first. */
export function withTimeout(promise, timeoutMs, what) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
    timer.unref();
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Spawns a process and keeps track of its exit in `child.exited`. */
function spawnTracked(command, args, options) {
  const child = spawn(command, args, options);
  liveChildren.add(child);
  child.exitInfo = null;
  child.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      liveChildren.delete(child);
      child.exitInfo = { code, signal };
      resolve(child.exitInfo);
    });
    child.once('error', (err) => {
      liveChildren.delete(child);
      child.exitInfo = { code: null, signal: null, error: err };
      resolve(child.exitInfo);
    });
  });
  return child;
}

/**
 * Sends `signal` to child and waits up to timeoutMs for it to exit, then sends
 * SIGKILL. Returns `{code, signal, killed}`, where killed is true when SIGKILL
 * was needed.
 */
async function stopChild(child, signal = 'SIGTERM', timeoutMs = STOP_TIMEOUT_MS) {
  if (child.exitInfo) return { ...child.exitInfo, killed: false };
  child.kill(signal);
  const info = await Promise.race([child.exited, nullAfter(timeoutMs)]);
  if (info) return { ...info, killed: false };
  child.kill('SIGKILL');
  const killedInfo = await withTimeout(child.exited, 5000, `pid ${child.pid} to exit after SIGKILL`);
  return { ...killedInfo, killed: true };
}

/** Returns the last `bytes` bytes of a text file, or a note when it cannot be read. */
export function readTail(file, bytes = LOG_TAIL_BYTES) {
  try {
    const text = fs.readFileSync(file, 'utf8');
    if (text.length <= bytes) return text;
    return `[... ${text.length - bytes} earlier characters not shown]\n${text.slice(-bytes)}`;
  } catch (err) {
    return `[cannot read ${file}: ${err.message}]`;
  }
}

/**
 * Sends one command to Redis over a raw TCP connection and returns the
 * first line of the reply, or '' when Redis closed the connection without one
 * (as SHUTDOWN does on success).
 */
export function redisCommand(port, args, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let received = '';
    let settled = false;
    const finish = (err, value) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    socket.setTimeout(timeoutMs, () =>
      finish(new Error(`Redis on port ${port} did not reply to ${args[0]} within ${timeoutMs} ms`)));
    socket.on('error', (err) => finish(err));
    socket.on('connect', () => {
      let request = `*${args.length}\r\n`;
      for (const arg of args) request += `$${Buffer.byteLength(String(arg))}\r\n${arg}\r\n`;
      socket.write(request);
    });
    socket.on('data', (chunk) => {
      received += chunk.toString('utf8');
      const end = received.indexOf('\r\n');
      if (end >= 0) finish(null, received.slice(0, end));
    });
    socket.on('close', () => finish(null, received));
  });
}

/**
 * A redis-server on 127.0.0.1 with AOF on, its data and log in a directory of
 * its own. With password, clients must send AUTH (`requirepass`).
 */
export class RedisServer {
  constructor(dir, { password = null } = {}) {
    this.dir = dir;
    this.password = password;
    this.dataDir = path.join(dir, 'redis-data');
    this.logPath = path.join(dir, 'redis.log');
    this.port = null;
    this.child = null;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts redis-server, on the port of the previous start if there was one. */
  async start() {
    if (this.child && !this.child.exitInfo) throw new Error('redis-server is already running');
    this.port ??= await freePort();
    await fsp.mkdir(this.dataDir, { recursive: true });
    const logFd = fs.openSync(this.logPath, 'a');
    try {
      this.child = spawnTracked('redis-server', [
        '--bind', '127.0.0.1', '--port', String(this.port),
        '--dir', this.dataDir, '--appendonly', 'yes', '--appendfsync', 'everysec',
        '--save', '', '--daemonize', 'no', '--protected-mode', 'yes',
        '--databases', '16', '--loglevel', 'notice',
        ...(this.password ? ['--requirepass', this.password] : []),
      ], { stdio: ['ignore', logFd, logFd] });
    } finally {
      fs.closeSync(logFd);
    }
    const child = this.child;
    await waitUntil(`redis-server on 127.0.0.1:${this.port} to reply PONG`, async () => {
      if (child.exitInfo) {
        throw new Error(`redis-server exited with ${JSON.stringify(child.exitInfo)}; log:\n${readTail(this.logPath)}`);
      }
      const reply = await redisCommand(this.port, ['PING'], 500);
      return reply === '+PONG' || (this.password !== null && reply.startsWith('-NOAUTH'));
    }, { timeoutMs: READY_TIMEOUT_MS });
  }

  /**
   * Stops redis-server with SHUTDOWN, so the AOF is written and synced; falls
   * back to SIGTERM and then SIGKILL. Returns `{code, signal, killed}`.
   */
  async stop() {
    const child = this.child;
    if (!child || child.exitInfo) return child?.exitInfo ?? null;
    // SHUTDOWN would need AUTH first; on SIGTERM Redis also syncs the AOF.
    if (this.password !== null) return stopChild(child, 'SIGTERM');
    try {
      const reply = await redisCommand(this.port, ['SHUTDOWN'], 5000);
      if (reply.startsWith('-')) throw new Error(`SHUTDOWN failed: ${reply}`);
      const info = await Promise.race([child.exited, nullAfter(STOP_TIMEOUT_MS)]);
      if (info) return { ...info, killed: false };
    } catch (err) {
      process.stderr.write(`harness: ${err.message}; sending SIGTERM to redis-server\n`);
    }
    return stopChild(child, 'SIGTERM');
  }

  /** Stops redis-server and starts it again on the same port and data directory. */
  async restart() {
    await this.stop();
    await this.start();
  }
}

/** One annolive process. */
export class AnnoliveInstance {
  /**
   * settingsFromEnv passes --listen, --redis, --instance and --log-level as
   * the environment variables ANNOLIVE_LISTEN, ANNOLIVE_REDIS,
   * ANNOLIVE_INSTANCE and ANNOLIVE_LOG_LEVEL. wrapper is a command, such as
   * valgrind, and its arguments that run the server binary. readyTimeoutMs
   * bounds the wait for /healthz after a start. stopTimeoutMs bounds the wait
   * for the exit after a signal. tls marks an instance whose args carry
   * --tls-cert and --tls-key, so wsUrl and httpUrl use wss: and https:, and
   * the /healthz probe accepts any certificate. keepPort starts the instance
   * again on the port of its first start, for a proxy that names it by address.
   */
  constructor(env, name, {
    redisUrl, args = [], envVars = {}, settingsFromEnv = false, wrapper = [], readyTimeoutMs = READY_TIMEOUT_MS,
    stopTimeoutMs = STOP_TIMEOUT_MS, auth = 'none', tls = false, keepPort = false,
  } = {}) {
    this.env = env;
    // 'none' runs without tokens (--no-auth); { secretFile } checks HS256
    // tokens signed with the secret in that file.
    this.auth = auth;
    this.tls = tls;
    this.keepPort = keepPort;
    this.settingsFromEnv = settingsFromEnv;
    this.name = name;
    this.redisUrl = redisUrl;
    this.extraArgs = args;
    this.envVars = envVars;
    this.wrapper = wrapper;
    this.readyTimeoutMs = readyTimeoutMs;
    this.stopTimeoutMs = stopTimeoutMs;
    this.port = null;
    this.child = null;
    this.logPath = null;
    this.starts = 0;
    this.stopResult = null;
  }

  get wsUrl() {
    return `${this.tls ? 'wss' : 'ws'}://127.0.0.1:${this.port}`;
  }

  get httpUrl() {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  /** Starts the process on a new free port and waits until /healthz returns 200. */
  async start() {
    if (this.child && !this.child.exitInfo) throw new Error(`instance ${this.name} is already running`);
    this.port = this.keepPort && this.port ? this.port : await freePort();
    this.starts += 1;
    this.stopResult = null;
    this.logPath = path.join(this.env.dir, `annolive-${this.name}-${this.starts}.log`);
    const settings = {
      listen: `127.0.0.1:${this.port}`, redis: this.redisUrl, instance: this.name, 'log-level': LOG_LEVEL,
    };
    if (this.auth === 'none') settings['no-auth'] = '1';
    else if (this.auth?.secretFile) settings['auth-secret-file'] = this.auth.secretFile;
    const args = [];
    const envVars = { ...this.envVars };
    for (const [option, value] of Object.entries(settings)) {
      if (this.settingsFromEnv) envVars[`ANNOLIVE_${option.toUpperCase().replaceAll('-', '_')}`] = value;
      else if (option === 'no-auth') args.push('--no-auth');
      else args.push(`--${option}`, value);
    }
    args.push(...this.extraArgs);
    this.child = this.wrapper.length > 0
      ? startLogged(this.wrapper[0], [...this.wrapper.slice(1), ANNOLIVE_BIN, ...args], this.logPath, envVars)
      : startLogged(ANNOLIVE_BIN, args, this.logPath, envVars);
    this.env.logFiles.add(this.logPath);
    const child = this.child;
    const health = await waitUntil(`instance ${this.name} to return 200 for /healthz`, async () => {
      if (child.exitInfo) {
        throw new Error(`instance ${this.name} exited with ${JSON.stringify(child.exitInfo)}; log:\n${readTail(this.logPath)}`);
      }
      const url = `${this.httpUrl}/healthz`;
      const response = this.tls ? await fetchJsonAnyCert(url, 1000) : await fetchJson(url, 1000);
      return response.status === 200 ? response.body : null;
    }, { timeoutMs: this.readyTimeoutMs });
    return health;
  }

  /** Returns true while the process runs. */
  get running() {
    return Boolean(this.child && !this.child.exitInfo);
  }

  /**
   * Sends signal (SIGTERM by default) and waits for the exit, with SIGKILL
   * after a time limit. Returns `{code, signal, killed}`.
   */
  async stop(signal = 'SIGTERM') {
    if (!this.child) return null;
    if (this.child.exitInfo && this.stopResult) return this.stopResult;
    const exitedBefore = Boolean(this.child.exitInfo);
    const result = await stopChild(this.child, signal, this.stopTimeoutMs);
    this.stopResult = { ...result, exitedBefore };
    return this.stopResult;
  }

  log() {
    return this.logPath ? readTail(this.logPath) : '';
  }
}

/** Spawns command with stdout and stderr both going to logPath. */
function startLogged(command, args, logPath, envVars = {}) {
  const logFd = fs.openSync(logPath, 'a');
  try {
    return spawnTracked(command, args, {
      stdio: ['ignore', logFd, logFd],
      env: { ...process.env, ...envVars },
    });
  } finally {
    fs.closeSync(logFd);
  }
}

/**
 * GETs url and returns `{status, text, body}`; body is the parsed JSON or
 * null when the response is not JSON.
 */
export async function fetchJson(url, timeoutMs = 10000) {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await response.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: response.status, text, body };
}

/**
 * GETs an https: url like fetchJson(), accepting any server certificate, for
 * instances with a self-signed one. Rejects after timeoutMs.
 */
export function fetchJsonAnyCert(url, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const request = https.get(url, { rejectUnauthorized: false, agent: false, timeout: timeoutMs }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body = null;
        try {
          body = JSON.parse(text);
        } catch {
          body = null;
        }
        resolve({ status: response.statusCode, text, body, headers: response.headers });
      });
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)));
    request.on('error', reject);
  });
}

/**
 * Runs a program to its end, with a time limit. Returns `{code, signal,
 * stdout, stderr, timedOut}` and never throws for a non-zero exit.
 */
export function runProcess(command, args, { timeoutMs = 60000, env = {}, input = null, cwd = REPO } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawnTracked(command, args, {
      cwd, env: { ...process.env, ...env }, stdio: [input === null ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const stdout = [];
    const stderr = [];
    let timedOut = false;
    child.stdout.on('data', (chunk) => stdout.push(chunk));
    child.stderr.on('data', (chunk) => stderr.push(chunk));
    if (input !== null) child.stdin.end(input);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const result = {
        code, signal, timedOut,
        stdout: Buffer.concat(stdout).toString('utf8'),
        stderr: Buffer.concat(stderr).toString('utf8'),
      };
      const report = sanitizerReport(result.stderr);
      if (report) processReports.push(`${[command, ...args].join(' ')}:\n${report}`);
      resolve(result);
    });
  });
}

/** Formats a process result for an assertion message. */
export function describeRun(what, result) {
  const status = result.timedOut ? 'timed out' : `exit code ${result.code}, signal ${result.signal}`;
  return `${what}: ${status}\n--- stderr ---\n${result.stderr.slice(-LOG_TAIL_BYTES)}` +
    `\n--- stdout (end) ---\n${result.stdout.slice(-2000)}`;
}

/**
 * A long-running command-line process, such as `annolive.js watch`, whose
 * stdout is kept as lines.
 */
export class LineProcess {
  constructor(command, args, { env = {} } = {}) {
    this.child = spawnTracked(command, args, {
      cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.lines = [];
    this.stderr = '';
    let partial = '';
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (chunk) => {
      partial += chunk;
      const parts = partial.split('\n');
      partial = parts.pop();
      for (const line of parts) if (line.trim() !== '') this.lines.push(line);
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk) => {
      this.stderr += chunk;
    });
  }

  /** Returns the stdout lines parsed as JSON; a line that is not JSON throws. */
  json() {
    return this.lines.map((line, i) => {
      try {
        return JSON.parse(line);
      } catch (err) {
        throw new Error(`stdout line ${i + 1} is not JSON (${err.message}): ${line.slice(0, 200)}`);
      }
    });
  }

  async stop(signal = 'SIGTERM') {
    return stopChild(this.child, signal);
  }
}

/**
 * Collects the events of one room that a client receives, in arrival order.
 */
export class EventRecorder {
  constructor(client, room) {
    this.client = client;
    this.room = room;
    this.events = [];
    this.listener = (message) => {
      if (message.room === room) this.events.push(message);
    };
    client.on('event', this.listener);
  }

  /** Waits until an event with seq >= `seq` has arrived. */
  waitForSeq(seq, timeoutMs = 10000) {
    return waitUntil(`event seq ${seq} of room ${this.room} at actor ${this.client.actor}`,
      () => this.events.some((e) => e.seq >= seq), { timeoutMs, intervalMs: 20 });
  }

  /** Waits until some event satisfies predicate and returns that event. */
  waitFor(what, predicate, timeoutMs = 10000) {
    return waitUntil(what, () => this.events.find(predicate), { timeoutMs, intervalMs: 20 });
  }

  stop() {
    this.client.off('event', this.listener);
  }
}

/**
 * The processes, clients and temporary directory of one test file.
 * Call init() in `before` and cleanup() in `after`.
 */
export class TestEnv {
  constructor(name) {
    this.name = name;
    this.dir = null;
    this.redis = null;
    this.instances = [];
    this.clients = [];
    this.lineProcesses = [];
    this.logFiles = new Set();
    this.failed = false;
    this.clientModule = null;
  }

  async init() {
    this.dir = await fsp.mkdtemp(path.join(os.tmpdir(), `annolive-${this.name}-`));
    if (!fs.existsSync(ANNOLIVE_BIN)) {
      throw new Error(`${ANNOLIVE_BIN} not found: build it with scripts/build.sh`);
    }
    return this;
  }

  async startRedis(options = {}) {
    this.redis = new RedisServer(this.dir, options);
    this.logFiles.add(this.redis.logPath);
    await this.redis.start();
    return this.redis;
  }

  /** Creates and starts an instance that uses this env's Redis unless redisUrl is given. */
  async startInstance(name, options = {}) {
    const instance = new AnnoliveInstance(this, name, {
      redisUrl: options.redisUrl ?? this.redis?.url, ...options,
    });
    this.instances.push(instance);
    await instance.start();
    return instance;
  }

  /** Imports the client module; fails with a clear message when it is missing. */
  async loadClientModule() {
    if (!this.clientModule) {
      if (!fs.existsSync(CLIENT_MODULE)) throw new Error(`${CLIENT_MODULE} not found`);
      this.clientModule = await import(pathToFileURL(CLIENT_MODULE).href);
    }
    return this.clientModule;
  }

  /** Returns a connected AnnoliveClient for instance, closed in cleanup(). */
  async client(instance, actor, options = {}) {
    const { AnnoliveClient } = await this.loadClientModule();
    const client = new AnnoliveClient(instance.wsUrl, { actor, timeoutMs: 15000, ...options });
    this.clients.push(client);
    await withTimeout(client.connect(), 10000, `client ${actor} to connect to ${instance.wsUrl}`);
    return client;
  }

  /** Runs the client-js command-line tool to its end. */
  runCli(args, options = {}) {
    return runProcess(process.execPath, [CLI, ...args], options);
  }

  /** Starts the client-js command-line tool in the background, stopped in cleanup(). */
  spawnCli(args, options = {}) {
    const proc = new LineProcess(process.execPath, [CLI, ...args], options);
    this.lineProcesses.push(proc);
    return proc;
  }

  /**
   * Wraps a test function so that a failure or a timeout prints the logs of
   * every process of this env.
   */
  wrap(fn) {
    return async (t) => {
      let settled = false;
      t.signal.addEventListener('abort', () => {
        if (!settled) {
          this.failed = true;
          this.printLogs(`test "${t.name}" was cancelled or timed out`);
        }
      });
      try {
        return await fn(t);
      } catch (err) {
        this.failed = true;
        this.printLogs(`test "${t.name}" failed: ${err.message.split('\n')[0]}`);
        throw err;
      } finally {
        settled = true;
      }
    };
  }

  printLogs(reason) {
    const parts = [`==== ${reason}; process logs from ${this.dir} ====`];
    for (const file of this.logFiles) {
      parts.push(`---- ${path.basename(file)} ----\n${readTail(file)}`);
    }
    for (const proc of this.lineProcesses) {
      if (proc.stderr) parts.push(`---- stderr of ${proc.child.spawnargs.slice(1).join(' ')} ----\n${proc.stderr.slice(-4000)}`);
    }
    process.stderr.write(`${parts.join('\n')}\n==== end of logs ====\n`);
  }

  /**
   * Closes clients and stops every process this env started. Throws after
   * stopping everything when an instance had exited before it was stopped,
   * did not exit with code 0 on SIGTERM, or needed SIGKILL, or when a log of
   * this env or the output of runProcess() contains a sanitizer report.
   */
  async cleanup() {
    const problems = [];
    for (const client of this.clients) {
      try {
        await withTimeout(client.close(), 5000, `client ${client.actor} to close`);
      } catch (err) {
        problems.push(`closing client ${client.actor}: ${err.message}`);
      }
    }
    for (const proc of this.lineProcesses) {
      await proc.stop().catch(() => {});
    }
    for (const instance of this.instances) {
      if (!instance.child) continue;
      const result = instance.stopResult ?? await instance.stop();
      if (result.exitedBefore) {
        problems.push(`instance ${instance.name} had exited before cleanup (code ${result.code}, signal ${result.signal}); log ${instance.logPath}`);
      } else if (result.killed) {
        problems.push(`instance ${instance.name} did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM and was killed; log ${instance.logPath}`);
      } else if (result.code !== 0) {
        problems.push(`instance ${instance.name} exited with code ${result.code}, signal ${result.signal} on SIGTERM; log ${instance.logPath}`);
      }
    }
    if (this.redis) await this.redis.stop();

    // A server built with the sanitizers writes a report to its log, and a
    // report at exit does not always change the exit code a test expects.
    for (const file of this.logFiles) {
      let report = null;
      try {
        report = sanitizerReport(fs.readFileSync(file, 'utf8'));
      } catch {
        // A log that cannot be read has no report to find.
      }
      if (report) problems.push(`sanitizer report in ${file}:\n${report}`);
    }
    for (const report of processReports.splice(0)) problems.push(`sanitizer report from ${report}`);

    if (problems.length > 0) {
      this.failed = true;
      this.printLogs(`cleanup found problems:\n  ${problems.join('\n  ')}`);
    }
    if (this.dir && !this.failed && process.env.ANNOLIVE_KEEP_TMP !== '1') {
      await fsp.rm(this.dir, { recursive: true, force: true });
    } else if (this.dir) {
      process.stderr.write(`harness: kept ${this.dir}\n`);
    }
    if (problems.length > 0) throw new Error(`cleanup of ${this.name}: ${problems.join('; ')}`);
  }
}

/** Returns objects sorted by id, for order-independent comparison of snapshots. */
export function sortById(objects) {
  const byId = (a, b) => {
    if (a.id === b.id) return 0;
    return a.id < b.id ? -1 : 1;
  };
  return [...objects].sort(byId);
}

/** Returns the ops of kind `op` (create, update, delete) found in a list of event messages. */
export function opsOf(events, op) {
  const found = [];
  for (const event of events) {
    if (event?.type !== undefined && event.type !== 'event') continue;
    for (const item of event?.ops ?? []) if (item.op === op) found.push(item);
  }
  return found;
}

/**
 * Sends an op batch like client.send(), with `"atomic": true` in the message
 * when options.atomic is true; client.send() has no such option. The other
 * options (opseq, timeoutMs) are those of client.send().
 */
export function sendBatch(client, room, ops, { atomic = false, ...options } = {}) {
  if (!atomic) return client.send(room, ops, options);
  const write = client.write;
  client.write = function writeAtomic(message) {
    return write.call(this, message.type === 'ops' ? { ...message, atomic: true } : message);
  };
  try {
    return client.send(room, ops, options);
  } finally {
    client.write = write;
  }
}

/** GETs /v1/rooms/ROOM/snapshot from instance; throws unless the status is 200. */
export async function httpSnapshot(instance, room) {
  const response = await fetchJson(`${instance.httpUrl}/v1/rooms/${encodeURIComponent(room)}/snapshot`);
  if (response.status !== 200) {
    throw new Error(`GET snapshot of ${room} from instance ${instance.name}: status ${response.status}: ${response.text.slice(0, 500)}`);
  }
  return response.body;
}
