/**
 * The probe Lambda for Node.js 20: the same reply contract as the Python
 * probe (probe_lambda/handler.py, the reference), so a test or a load run can
 * measure environment reuse on either runtime. Node's standard library only;
 * handler `probe.handler`. index.mjs beside it stays the seed's bare handler.
 *
 * Reply (contract version 1): env_id, request_id, cold, new_environment,
 * init_type, env_invocations, env_age_ms, session, cache {hit, entries, age_ms}
 * (null without a session), probe. It answers an Invoke payload {"session": "..."} and a Function URL
 * event (payload format 2.0; session from header x-affinity-session, else
 * query session=), the latter as {statusCode, headers, body}. A bad event gets
 * the Python probe's 400-style error with the same message.
 *
 * Environment variables (all optional), read as handler.py reads them:
 *   AFFINITY_CACHE_SIZE     max sessions kept per environment (default 10000, 1..1000000)
 *   AFFINITY_CACHE_TTL_S    seconds a cached session stays valid (default 900, 0.001..86400)
 *   AFFINITY_MISS_DELAY_MS  wait on a miss: the backend read a hit saves (default 0, 0..10000)
 *   AFFINITY_PROACTIVE_GAP_MS  a first call this long after init was initialised ahead (default 10000)
 * Unset, empty or not a number as Python's float() reads it: the default;
 * out of range: clamped. It never echoes any environment variable but the log
 * stream name.
 *
 * To run it in the emulator, name it in the config (a function with no
 * `code` runs index.mjs instead); the folder ships with the package:
 *   - name: probe-node
 *     runtime: nodejs20.x
 *     code: <site-packages>/probe_lambda/node   # config.probe_folder(node=True)
 *     handler: probe.handler
 *     environment: {AFFINITY_CACHE_SIZE: 1000}
 * On AWS: zip probe.mjs alone, runtime nodejs20.x, handler probe.handler.
 *
 * Known differences from handler.py, both outside the contract:
 * - a non-object payload's error names its Python type, but the runtime has
 *   already parsed the JSON, so an integral float (`1.0`, `1e3`) reads as
 *   `int` here and `float` there;
 * - a `nan` setting falls back to the default here; handler.py passes NaN
 *   through its clamp (a size fails at init, a TTL never hits).
 * Reply bodies are JSON.stringify's (no spaces, non-ASCII unescaped): the
 * same JSON values as json.dumps, not the same bytes.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

const PROBE_VERSION = 1;
const MAX_SESSION_LEN = 256;
const SESSION_HEADER = 'x-affinity-session';

/** A bounded LRU with a TTL counted from when the session was cached. A Map
 * iterates in insertion order, so delete + set moves a key to the young end.
 * The Node.js wrapper (wrapper/nodejs/lambda-affinity-wrapper/index.mjs) holds
 * the same cache: each file deploys standing alone (this one as probe.mjs
 * alone, that one as a layer), so neither can import the other. */
export class SessionCache {
  constructor(maxEntries = 10000, ttlMs = 900000) {
    if (!(maxEntries >= 1)) throw new RangeError('maxEntries must be >= 1');
    if (!(ttlMs > 0)) throw new RangeError('ttlMs must be > 0');
    this.maxEntries = maxEntries;
    this.ttlMs = ttlMs;
    this.items = new Map();
  }

  /** [hit, ageMs]; a miss (or an expired entry) caches the key. */
  lookup(key, now) {
    const items = this.items;
    const stored = items.get(key);
    items.delete(key);
    if (stored !== undefined && now - stored < this.ttlMs) {
      items.set(key, stored); // a hit refreshes recency, not the TTL
      return [true, now - stored];
    }
    items.set(key, now);
    for (const oldest of items.keys()) {
      if (items.size <= this.maxEntries) break;
      items.delete(oldest);
    }
    return [false, null];
  }

  get size() { return this.items.size; }
}

// Python's float(): ASCII whitespace is stripped, non-ASCII whitespace and
// Unicode decimal digits are first mapped to ASCII, `_` may separate digits,
// inf/infinity/nan in any case. Number() differs on each of those and also
// takes hex/binary and a blank string, so it only sees what this accepts.
const PY_FLOAT = /^[+-]?(?:(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?)$/;
const PY_SPECIAL = /^([+-]?)(inf|infinity|nan)$/i;
const UNICODE_SPACE = /[\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/gu;
const UNICODE_DIGIT = /(?![0-9])\p{Nd}/gu;
const ND = /^\p{Nd}$/u;

function digitValue(ch) {
  // Unicode assigns decimal digits in runs of ten, 0 first: the offset from
  // the start of the run of digits is the value.
  let cp = ch.codePointAt(0);
  let start = cp;
  while (ND.test(String.fromCodePoint(start - 1))) start -= 1;
  return String((cp - start) % 10);
}

/** float(raw) as Python computes it, or NaN when Python raises ValueError. */
export function pyFloat(raw) {
  const text = raw.replace(UNICODE_SPACE, ' ').replace(UNICODE_DIGIT, digitValue).replace(/^[ \t\n\v\f\r]+|[ \t\n\v\f\r]+$/g, '');
  const special = PY_SPECIAL.exec(text);
  if (special) return special[2].toLowerCase() === 'nan' ? NaN : (special[1] === '-' ? -Infinity : Infinity);
  return PY_FLOAT.test(text) ? Number(text.replaceAll('_', '')) : NaN;
}

/** handler.py's _env_number: default when unset, empty or unparsable, else clamped. */
export function envNumber(name, dflt, lo, hi) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const value = pyFloat(raw);
  if (Number.isNaN(value)) return dflt;
  return Math.min(Math.max(value, lo), hi);
}

// Module state survives between invocations in one environment: the very
// thing this probe measures.
const INIT = performance.now();
const CACHE = new SessionCache(
  Math.trunc(envNumber('AFFINITY_CACHE_SIZE', 10000, 1, 1000000)),
  envNumber('AFFINITY_CACHE_TTL_S', 900, 0.001, 86400) * 1000,
);
const MISS_DELAY_MS = envNumber('AFFINITY_MISS_DELAY_MS', 0, 0, 10000);
let invocations = 0;

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

class BadEvent extends Error {}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
// Own keys only: JSON.parse makes "__proto__" an own key, and Python's
// dict.get never sees inherited ones.
const own = (obj, key) => (Object.hasOwn(obj, key) ? obj[key] : undefined);
const isNone = (v) => v === null || v === undefined;

// Python truthiness, for handler.py's `event.get(...) or {}`.
function pyFalsy(v) {
  if (isNone(v) || v === false || v === 0 || v === '') return true;
  if (Array.isArray(v)) return v.length === 0;
  return isObject(v) && Object.keys(v).length === 0;
}

// The name Python's type() gives the same JSON value.
function pyTypeName(v) {
  if (typeof v === 'string') return 'str';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float';
  if (Array.isArray(v)) return 'list';
  return typeof v;
}

const isUrlEvent = (event) => isObject(event) && Object.hasOwn(event, 'requestContext') && Object.hasOwn(event, 'rawPath');

function checkSession(value) {
  if (isNone(value)) return null;
  // Python's len() counts code points; .length counts UTF-16 units.
  if (typeof value !== 'string' || value === '' || [...value].length > MAX_SESSION_LEN) {
    throw new BadEvent(`session must be a string of 1 to ${MAX_SESSION_LEN} characters`);
  }
  return value;
}

function sessionFromUrlEvent(event) {
  const headers = pyFalsy(own(event, 'headers')) ? {} : event.headers;
  const query = pyFalsy(own(event, 'queryStringParameters')) ? {} : event.queryStringParameters;
  if (!isObject(headers) || !isObject(query)) throw new BadEvent('headers and queryStringParameters must be objects');
  // Function URLs lower-case header names; be lenient for hand-made events.
  // The first matching header decides, even when null (as in handler.py).
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() === SESSION_HEADER) return checkSession(value);
  }
  return checkSession(own(query, 'session'));
}

function sessionFromPayload(event) {
  if (isNone(event)) return null;
  if (!isObject(event)) {
    throw new BadEvent(`payload must be a JSON object like {"session": "..."}, got ${pyTypeName(event)}`);
  }
  return checkSession(own(event, 'session'));
}

const round3 = (x) => Math.round(x * 1000) / 1000;

async function probe(session, requestId) {
  invocations += 1;
  const now = performance.now();
  const cold = invocations === 1 && waitedForInit(INIT_TYPE, now - INIT);
  let cache = null;
  if (session !== null) {
    const [hit, age] = CACHE.lookup(session, now);
    if (!hit && MISS_DELAY_MS) await sleep(MISS_DELAY_MS);
    cache = { hit, entries: CACHE.size, age_ms: age === null ? null : round3(age) };
  }
  return {
    env_id: process.env.AWS_LAMBDA_LOG_STREAM_NAME ?? 'unknown',
    request_id: requestId,
    cold,
    new_environment: invocations === 1 && !cold,
    init_type: INIT_TYPE,
    env_invocations: invocations,
    env_age_ms: round3(now - INIT),
    session,
    cache,
    probe: PROBE_VERSION,
  };
}

const urlResponse = (statusCode, body) => ({ statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

export const handler = async (event, context) => {
  // null, not undefined: JSON.stringify would drop the key.
  const requestId = context?.awsRequestId ?? null;
  if (isUrlEvent(event)) {
    let session;
    try {
      session = sessionFromUrlEvent(event);
    } catch (err) {
      if (!(err instanceof BadEvent)) throw err;
      return urlResponse(400, { error: err.message, probe: PROBE_VERSION });
    }
    return urlResponse(200, await probe(session, requestId));
  }
  let session;
  try {
    session = sessionFromPayload(event);
  } catch (err) {
    if (!(err instanceof BadEvent)) throw err;
    return { error: err.message, statusCode: 400, probe: PROBE_VERSION };
  }
  return probe(session, requestId);
};
