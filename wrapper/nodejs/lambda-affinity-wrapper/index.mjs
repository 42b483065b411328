/**
 * lambda-affinity-wrapper for Node.js: per-user execution-environment reuse of any Lambda app, no code change.
 * The Python wrapper (wrapper/python/lambda_affinity_wrapper/) is the reference; this one keeps its contract.
 *
 * Configured as the function's handler, as the observability layers are:
 *   handler  /opt/nodejs/node_modules/lambda-affinity-wrapper/index.handler
 *   AFFINITY_HANDLER=app.handler          (the app's own: file.export, relative to LAMBDA_TASK_ROOT)
 * or in code: `import { withAffinity } from 'lambda-affinity-wrapper'; export const handler = withAffinity(app);`
 *
 * HTTP results (Function URL, API Gateway REST and HTTP APIs, ALB) get the response headers x-affinity-env,
 * x-affinity-cold, x-affinity-env-invocations, x-affinity-session-hit (absent without a usable session key)
 * x-affinity-init-age-ms, x-affinity-new-env and x-affinity-init-type (when Lambda set it); the result is copied, never changed in place. Other calls write one line
 * `AFFINITY {json}` to the log, and with AFFINITY_INVOKE_FIELD=1 a JSON-object result gets `_affinity`.
 * Settings: AFFINITY_SESSION_FROM (header:NAME | cookie:NAME), AFFINITY_CACHE_SIZE, AFFINITY_CACHE_TTL_S.
 *
 * The session cache is the Node probe's (probe_lambda/node/probe.mjs) in kind; each is written out in full
 * because each ships as one self-contained file (the probe deploys as probe.mjs alone).
 */
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

export const MAX_SESSION_LEN = 256;
export const SESSION_HEADER = 'x-affinity-session';
const INIT = performance.now();

/** A bounded LRU with a TTL counted from when the session was cached (a Map iterates oldest first). */
export class SessionCache {
  constructor(maxEntries = 10000, ttlMs = 900000) {
    this.maxEntries = maxEntries;
    this.ttlMs = ttlMs;
    this.items = new Map();
  }

  /** true when the key was cached and fresh; a miss (or an expired entry) caches it. */
  lookup(key, now) {
    const items = this.items;
    const stored = items.get(key);
    items.delete(key);
    if (stored !== undefined && now - stored < this.ttlMs) {
      items.set(key, stored); // a hit refreshes recency, not the TTL
      return true;
    }
    items.set(key, now);
    for (const oldest of items.keys()) {
      if (items.size <= this.maxEntries) break;
      items.delete(oldest);
    }
    return false;
  }
}

/** A numeric setting: the default when unset, empty or not a number, else clamped. */
function envNumber(name, dflt, lo, hi) {
  const raw = process.env[name];
  const value = raw === undefined || raw.trim() === '' ? NaN : Number(raw);
  return Number.isNaN(value) ? dflt : Math.min(Math.max(value, lo), hi);
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const own = (obj, key) => (Object.hasOwn(obj, key) ? obj[key] : undefined);
// Python's len() counts code points, .length UTF-16 units (never fewer): count only when it could matter.
export const isSessionKey = (v) =>
  typeof v === 'string' && v !== '' && (v.length <= MAX_SESSION_LEN || [...v].length <= MAX_SESSION_LEN);

/** AFFINITY_SESSION_FROM -> {kind, name}; unset: the default header, malformed: null. */
export function parseSource(setting) {
  if (setting === undefined || setting === null || setting === '') return { kind: 'header', name: SESSION_HEADER };
  const colon = setting.indexOf(':');
  const kind = setting.slice(0, colon).trim().toLowerCase();
  const name = setting.slice(colon + 1).trim();
  if (colon < 0 || !['header', 'cookie'].includes(kind) || name === '' || /[ ;=,\t\r\n]/.test(name)) return null;
  return { kind, name: kind === 'header' ? name.toLowerCase() : name };
}

export function eventKind(event) {
  if (!isObject(event) || !isObject(own(event, 'requestContext'))) return 'other';
  if (Object.hasOwn(event, 'rawPath')) return 'http-v2';
  if (Object.hasOwn(event.requestContext, 'elb')) return Object.hasOwn(event, 'headers') ? 'alb' : 'alb-multi';
  if (Object.hasOwn(event, 'httpMethod')) return 'rest-v1';
  return 'other';
}

function headerValues(event, name) {
  const headers = own(event, 'headers');
  if (isObject(headers)) {
    const direct = own(headers, name);
    if (direct !== undefined && direct !== null) return [direct];
    const found = Object.entries(headers).filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);
    if (found.length) return found;
  }
  const multi = own(event, 'multiValueHeaders');
  if (!isObject(multi)) return [];
  return Object.entries(multi).filter(([k, vs]) => k.toLowerCase() === name && Array.isArray(vs)).flatMap(([, vs]) => vs);
}

function cookie(pairs, name) {
  for (const pair of pairs) {
    if (typeof pair !== 'string') continue;
    for (const part of pair.split(';')) {
      const text = part.trim();
      const eq = text.indexOf('=');
      if (eq >= 0 && text.slice(0, eq) === name) return text.slice(eq + 1);
    }
  }
  return undefined;
}

/** The request's session key, or null when it has none or not a usable one (never throws on odd events). */
export function sessionKey(event, source) {
  let value;
  if (source.kind === 'header') {
    value = headerValues(event, source.name)[0];
  } else {
    const cookies = own(event, 'cookies'); // payload 2.0 moves cookies out of the headers
    value = Array.isArray(cookies) ? cookie(cookies, source.name) : undefined;
    if (value === undefined) value = cookie(headerValues(event, 'cookie'), source.name);
  }
  return isSessionKey(value) ? value : null;
}

export function factHeaders(facts) {
  const out = {
    'x-affinity-env': facts.env,
    'x-affinity-cold': facts.cold ? '1' : '0',
    'x-affinity-env-invocations': String(facts.env_invocations),
  };
  if (facts.session_hit !== null) out['x-affinity-session-hit'] = facts.session_hit ? '1' : '0';
  out['x-affinity-init-age-ms'] = String(facts.init_age_ms);
  out['x-affinity-new-env'] = facts.new_environment ? '1' : '0';
  if (facts.init_type !== null) out['x-affinity-init-type'] = facts.init_type;
  return out;
}

/** A copy of the app's HTTP result with the headers added, or null when there is nowhere to put them. */
export function withHeaders(result, kind, facts) {
  if (!isObject(result) || !Object.hasOwn(result, 'statusCode')) return null;
  const multi = kind === 'alb-multi' || (kind !== 'http-v2' && Object.hasOwn(result, 'multiValueHeaders'));
  const key = multi ? 'multiValueHeaders' : 'headers';
  const existing = result[key];
  if (existing !== undefined && existing !== null && !isObject(existing)) return null;
  const added = factHeaders(facts);
  if (multi) for (const name of Object.keys(added)) added[name] = [added[name]];
  // Object.assign, not keys added one by one to a spread copy: V8 makes the latter ~40 times slower here.
  return { ...result, [key]: Object.assign({}, existing, added) };
}

// How Lambda initialised this environment (AWS_LAMBDA_INITIALIZATION_TYPE). Provisioned concurrency and Managed
// Instances never put an init on a call's path; an on-demand first call PROACTIVE_GAP_MS or more after init was
// initialised ahead (proactive initialisation: Datadog's tracer's rule, Stuyvenberg 2023); a SnapStart restore is on
// the call's path. The Python wrapper's state.py holds the same rule (docs/probe.md).
const INIT_TYPE = process.env.AWS_LAMBDA_INITIALIZATION_TYPE || null;
const PREINITIALISED = new Set(['provisioned-concurrency', 'lambda-managed-instances']);
const PROACTIVE_GAP_MS = envNumber('AFFINITY_PROACTIVE_GAP_MS', 10000, 0, 86400000);

/** Did an environment's first call wait for its init (a user-facing cold start)? */
export function waitedForInit(kind, sinceInitMs, gapMs = PROACTIVE_GAP_MS) {
  if (PREINITIALISED.has(kind)) return false;
  if (kind === 'snap-start') return true;
  return sinceInitMs < gapMs;
}

class Wrapper {
  constructor() {
    this.invocations = 0;
    this.cache = new SessionCache(
      Math.trunc(envNumber('AFFINITY_CACHE_SIZE', 10000, 1, 1000000)),
      envNumber('AFFINITY_CACHE_TTL_S', 900, 0.001, 86400) * 1000,
    );
    this.source = parseSource(process.env.AFFINITY_SESSION_FROM);
    if (this.source === null) {
      process.stderr.write(`lambda-affinity-wrapper: AFFINITY_SESSION_FROM=${JSON.stringify(process.env.AFFINITY_SESSION_FROM)} `
        + `is not header:NAME or cookie:NAME; reading header ${SESSION_HEADER}\n`);
      this.source = parseSource(undefined);
    }
    this.invokeField = process.env.AFFINITY_INVOKE_FIELD === '1';
  }

  async call(fn, event, context) {
    this.invocations += 1;
    const invocations = this.invocations;
    const now = performance.now();
    const kind = eventKind(event);
    let hit = null;
    if (kind !== 'other') {
      const key = sessionKey(event, this.source);
      if (key !== null) hit = this.cache.lookup(key, now);
    }
    const cold = invocations === 1 && waitedForInit(INIT_TYPE, now - INIT);
    const result = await runHandler(fn, event, context);
    const facts = {
      env: process.env.AWS_LAMBDA_LOG_STREAM_NAME ?? 'unknown',
      cold,
      env_invocations: invocations,
      session_hit: hit,
      init_age_ms: Math.trunc(now - INIT),
      new_environment: invocations === 1 && !cold,
      init_type: INIT_TYPE,
    };
    if (kind !== 'other') {
      const out = withHeaders(result, kind, facts);
      if (out !== null) return out;
    }
    const doc = { ...facts, request_id: context?.awsRequestId ?? null, function: process.env.AWS_LAMBDA_FUNCTION_NAME ?? null };
    // A raw line, as Python's print() writes it (console.log would prefix time, request id and level).
    process.stdout.write(`AFFINITY ${JSON.stringify(doc)}\n`);
    if (this.invokeField && kind === 'other' && isObject(result)) return { ...result, _affinity: doc };
    return result;
  }
}

// Callback-style handlers (three parameters) and async or plain ones alike, as the runtime runs them.
function runHandler(fn, event, context) {
  if (fn.length < 3) return fn(event, context);
  return new Promise((resolve, reject) => {
    const out = fn(event, context, (err, value) => (err ? reject(err) : resolve(value)));
    if (out && typeof out.then === 'function') out.then(resolve, reject);
  });
}

let wrapper = null;

/** The app's handler, wrapped: `export const handler = withAffinity(app)`. */
export function withAffinity(fn) {
  wrapper ??= new Wrapper();
  const w = wrapper;
  return (event, context) => w.call(fn, event, context);
}

/** The app's handler named by AFFINITY_HANDLER (file.export under LAMBDA_TASK_ROOT), as the runtime finds it. */
export async function loadHandler(spec = process.env.AFFINITY_HANDLER) {
  const dot = (spec ?? '').lastIndexOf('.');
  if (!spec || dot <= 0) throw new Error(`AFFINITY_HANDLER=${JSON.stringify(spec ?? '')}: expected file.export (e.g. app.handler)`);
  const root = process.env.LAMBDA_TASK_ROOT || process.cwd();
  const modPath = spec.slice(0, dot);
  const exportName = spec.slice(dot + 1);
  const file = ['.mjs', '.js', '.cjs'].map((ext) => path.resolve(root, modPath + ext)).find((f) => fs.existsSync(f));
  if (!file) throw new Error(`AFFINITY_HANDLER=${JSON.stringify(spec)}: cannot find module '${modPath}' in ${root}`);
  const mod = await import(pathToFileURL(file).href);
  const fn = mod[exportName] ?? mod.default?.[exportName];
  if (typeof fn !== 'function') throw new Error(`AFFINITY_HANDLER=${JSON.stringify(spec)}: ${exportName} is not exported`);
  return fn;
}

let original = null;

/** The handler to configure: runs AFFINITY_HANDLER wrapped. */
export const handler = async (event, context) => {
  original ??= withAffinity(await loadHandler());
  return original(event, context);
};

// Configured as the handler: the app's module loads during init, as it would unwrapped.
if (/lambda-affinity-wrapper\/index\.handler$/.test(process.env._HANDLER ?? '') && process.env.AFFINITY_HANDLER) {
  original = withAffinity(await loadHandler());
}
