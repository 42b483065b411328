// The built-in Node.js runtime client: Lambda's Runtime API (2018-06-01).
// Node's standard library only. Loads `_HANDLER` (file.export) from
// LAMBDA_TASK_ROOT (.mjs, .js or .cjs), then loops: GET /next, run the
// handler, POST the result or the error, as AWS's Node.js runtime does.
// On Lambda Managed Instances (AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances) the main thread
// starts AWS_LAMBDA_NODEJS_WORKER_COUNT worker threads (default 1); each loads the handler (its own
// module globals) and runs its share of the environment's LAMBDA_AFFINITY_MAX_CONCURRENCY loops at once.
import http from 'node:http';
import { Worker, isMainThread } from 'node:worker_threads';
import fs from 'node:fs';
import path from 'node:path';
import util from 'node:util';
import { pathToFileURL } from 'node:url';

const API = '/2018-06-01/runtime';
const [HOST, PORT] = (() => {
  const a = process.env.AWS_LAMBDA_RUNTIME_API || '';
  const i = a.lastIndexOf(':');
  return [a.slice(0, i) || '127.0.0.1', Number(a.slice(i + 1))];
})();
const MANAGED = process.env.AWS_LAMBDA_INITIALIZATION_TYPE === 'lambda-managed-instances';
const positive = (text) => Math.max(1, Number.parseInt(text || '1', 10) || 1);
const WORKERS = MANAGED ? positive(process.env.AWS_LAMBDA_NODEJS_WORKER_COUNT) : 1;
// Each loop its own connection: one /next waiting per loop, as many loops as this worker's share.
const LOOPS = MANAGED ? Math.ceil(positive(process.env.LAMBDA_AFFINITY_MAX_CONCURRENCY) / WORKERS) : 1;
const agent = new http.Agent({ keepAlive: true, maxSockets: LOOPS });
let currentRequestId = undefined;

// Lambda's console format: timestamp, request id, level, message; a
// multi-line message stays one log event (newlines become \r).
for (const [name, level] of [['log', 'INFO'], ['info', 'INFO'], ['warn', 'WARN'], ['error', 'ERROR'], ['debug', 'DEBUG']]) {
  const stream = level === 'ERROR' || level === 'WARN' ? process.stderr : process.stdout;
  console[name] = (...args) => {
    const msg = util.format(...args).replace(/\n/g, '\r');
    stream.write(`${new Date().toISOString()}\t${currentRequestId ?? 'undefined'}\t${level}\t${msg}\n`);
  };
}

function call(method, p, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(body);
    const req = http.request({ host: HOST, port: PORT, method, path: API + p, agent,
      headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length, ...headers } : headers },
    (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

function errorDocument(err, fallbackType) {
  if (err instanceof Error) {
    return { errorType: err.name || fallbackType, errorMessage: err.message,
      trace: typeof err.stack === 'string' ? err.stack.split('\n') : [] };
  }
  return { errorType: fallbackType, errorMessage: String(err), trace: [] };
}

function postError(p, doc) {
  // AWS's Node runtime logs the error before reporting it.
  process.stderr.write(`${new Date().toISOString()}\t${currentRequestId ?? 'undefined'}\tERROR\t${JSON.stringify(doc)}\n`);
  return call('POST', p, JSON.stringify({ errorType: doc.errorType, errorMessage: doc.errorMessage, stackTrace: doc.trace }),
    { 'Lambda-Runtime-Function-Error-Type': doc.errorType });
}

class InitError extends Error {
  constructor(type, message) { super(message); this.errorType = type; }
}

async function loadHandler() {
  const spec = process.env._HANDLER || '';
  const root = process.env.LAMBDA_TASK_ROOT || process.cwd();
  const dot = spec.lastIndexOf('.');
  if (dot <= 0) throw new InitError('Runtime.MalformedHandlerName', `Bad handler ${spec}`);
  const modPath = spec.slice(0, dot);
  const exportName = spec.slice(dot + 1);
  // An absolute handler under /opt (a layer's, as observability layers configure it) is read from the folder the
  // emulator extracted the function's layers into (emulator/layers.py).
  const opt = process.env.LAMBDA_AFFINITY_OPT;
  const base = opt && modPath.startsWith('/opt/') ? path.join(opt, modPath.slice('/opt/'.length)) : modPath;
  const file = ['.mjs', '.js', '.cjs'].map((ext) => path.resolve(root, base + ext)).find((f) => fs.existsSync(f));
  if (!file) throw new InitError('Runtime.ImportModuleError', `Error: Cannot find module '${modPath}'`);
  let mod;
  try {
    mod = await import(pathToFileURL(file).href);
  } catch (err) {
    if (err instanceof SyntaxError) throw new InitError('Runtime.UserCodeSyntaxError', `${err.name}: ${err.message}`);
    throw err;
  }
  const fn = mod[exportName] ?? mod.default?.[exportName];
  if (typeof fn !== 'function') throw new InitError('Runtime.HandlerNotFound', `${spec} is undefined or not exported`);
  return fn;
}

function makeContext(headers) {
  const env = process.env;
  const deadline = Number(headers['lambda-runtime-deadline-ms'] || 0);
  const cc = headers['lambda-runtime-client-context'];
  const ci = headers['lambda-runtime-cognito-identity'];
  return {
    awsRequestId: headers['lambda-runtime-aws-request-id'],
    invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    clientContext: cc ? JSON.parse(cc) : undefined,
    identity: ci ? JSON.parse(ci) : undefined,
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
  };
}

function runHandler(handler, event, context) {
  // Callback-style handlers (three parameters) and async/promise ones alike.
  return new Promise((resolve, reject) => {
    let settled = false;
    const callback = (err, result) => {
      if (settled) return;
      settled = true;
      if (err !== undefined && err !== null) reject(err); else resolve(result);
    };
    try {
      const out = handler(event, context, callback);
      if (out && typeof out.then === 'function') out.then((r) => callback(null, r), (e) => callback(e ?? new Error('null rejection')));
      else if (handler.length < 3) callback(null, out);
    } catch (err) {
      callback(err);
    }
  });
}

async function main() {
  let handler;
  try {
    handler = await loadHandler();
  } catch (err) {
    const doc = err instanceof InitError
      ? { errorType: err.errorType, errorMessage: err.message, trace: [] }
      : errorDocument(err, 'Runtime.UnhandledInitError');
    await postError('/init/error', doc);
    process.exit(1);
  }
  await Promise.all(Array.from({ length: LOOPS }, () => serve(handler)));
}

async function serve(handler) {
  for (;;) {
    const next = await call('GET', '/invocation/next');
    if (next.status !== 200) process.exit(1);
    const requestId = next.headers['lambda-runtime-aws-request-id'];
    currentRequestId = requestId;
    const trace = next.headers['lambda-runtime-trace-id'];
    if (trace) process.env._X_AMZN_TRACE_ID = trace; else delete process.env._X_AMZN_TRACE_ID;
    let result;
    try {
      const event = next.body ? JSON.parse(next.body) : undefined;
      result = await runHandler(handler, event, makeContext(next.headers));
    } catch (err) {
      await postError(`/invocation/${requestId}/error`, errorDocument(err, 'Error'));
      continue;
    }
    let body;
    try {
      body = result === undefined ? 'null' : JSON.stringify(result);
    } catch (err) {
      await postError(`/invocation/${requestId}/error`, { errorType: 'Runtime.MarshalError', errorMessage: `Unable to stringify response body: ${err.message}`, trace: [] });
      continue;
    }
    await call('POST', `/invocation/${requestId}/response`, body);
  }
}

function startWorkers() {
  for (let i = 0; i < WORKERS; i++) {
    const worker = new Worker(new URL(import.meta.url));
    // A worker that ends ends the environment, as its process would.
    worker.on('error', (err) => {
      process.stderr.write(`runtime worker failed: ${err && err.stack ? err.stack : err}\n`);
      process.exit(1);
    });
    worker.on('exit', (code) => process.exit(code || 1));
  }
}

if (MANAGED && isMainThread) {
  startWorkers();
} else {
  main().catch((err) => {
    process.stderr.write(`runtime client failed: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  });
}
