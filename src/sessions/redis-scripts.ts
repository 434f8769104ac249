/**
 * The Lua scripts of the Redis session store (redis-store.ts, which describes the keys): each multi-key change is
 * one script, so it is atomic. Each names the KEYS and ARGV it takes, in order, and what it returns.
 */
import { LEASE_TOKEN_SEP } from './lease-token.js';
import type { SessionStatus } from './model.js';
import { SESSION_MARKS, type SessionMark } from './store.js';

const STATUS_KEYS: Record<SessionStatus, null> = { active: null, running: null, closed: null, moved: null };
/** the statuses with an index (`sessions:st:<status>`), in the order their keys are passed to the scripts */
export const INDEXED_STATUSES = Object.keys(STATUS_KEYS) as SessionStatus[];
/** the marks with an index (`sessions:mark:<mark>`), in the order their keys are passed (and their flags: markFlags) */
export const INDEXED_MARKS = Object.keys(SESSION_MARKS) as SessionMark[];
/** keys of a record's indexes a write or a deletion takes: each status's index, then each mark's set */
export const INDEX_KEYS = INDEXED_STATUSES.length + INDEXED_MARKS.length;
/**
 * the scripts that write a record take these keys first: session, index, turns, turnrevs, turnrev counter, meta,
 * then the INDEX_KEYS (each status's index, each mark's set)
 */
export const RECORD_KEYS = 6 + INDEX_KEYS;

// A record's place in the status and mark indexes, kept with the write in the same script. KEYS[first …]: each
// status's index (INDEXED_STATUSES' order), then each mark's set (INDEXED_MARKS'). indexRecord: the id at `score`
// in its status's index and in no other (a status index that drifted is put right at the record's next write),
// and in each mark's set whose flag in `marks` (one '1' or '0' a mark, computed by the caller from the record
// written) is '1', out of the others ('': the mark sets left as they are). unindexRecord: out of all of them (a
// deletion).
const INDEX_RECORD = `local STATUSES = {${INDEXED_STATUSES.map((s) => `'${s}'`).join(', ')}}
local function indexRecord(first, id, st, score, marks)
  for i, name in ipairs(STATUSES) do
    if name == st then redis.call('ZADD', KEYS[first + i - 1], score, id) else redis.call('ZREM', KEYS[first + i - 1], id) end
  end
  for j = 1, #marks do
    local key = KEYS[first + #STATUSES + j - 1]
    if string.sub(marks, j, j) == '1' then redis.call('SADD', key, id) else redis.call('SREM', key, id) end
  end
end
local function unindexRecord(first, id)
  for i = 1, #STATUSES do redis.call('ZREM', KEYS[first + i - 1], id) end
  for j = 1, ${INDEXED_MARKS.length} do redis.call('SREM', KEYS[first + #STATUSES + j - 1], id) end
end
`;

// The store's turn epoch (`turnStore` in the meta hash, KEYS[6]): names the revisions of the `turnrev` counter
// (KEYS[5]) in the process's turn cache (turn-cache.ts). The counter restarts from 1 only when its key is gone (a
// FLUSHALL or FLUSHDB under running gateways, an eviction, a deletion), so a write that finds it gone, before it
// takes a revision, names a new epoch: `candidate`, a fresh random id from the caller. An epoch that is gone
// (without the counter) is named anew too. Returns the epoch the revisions written now belong to.
const STORE_EPOCH = `local function storeEpoch(candidate)
  local epoch = redis.call('HGET', KEYS[6], 'turnStore')
  if not epoch or redis.call('EXISTS', KEYS[5]) == 0 then
    redis.call('HSET', KEYS[6], 'turnStore', candidate)
    epoch = candidate
  end
  return epoch
end
`;

// Stores the (index, turn JSON) pairs of ARGV from `first` on with a new revision each, appending the revisions to
// `out`, drops the entries from `len` on (a session's entries are always 0 … n-1), and stamps the record's turn
// list with a new revision (`tr`: a reader that knows the stamp knows the list). Returns the stamp.
const WRITE_TURNS = `local function writeTurns(out, first, len)
  for i = first, #ARGV, 2 do
    local rev = redis.call('INCR', KEYS[5])
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
    redis.call('HSET', KEYS[4], ARGV[i], rev)
    out[#out + 1] = rev
  end
  local held = redis.call('HLEN', KEYS[4])
  for i = len, held - 1 do
    redis.call('HDEL', KEYS[3], i)
    redis.call('HDEL', KEYS[4], i)
  end
  return redis.call('INCR', KEYS[5])
end
`;

// KEYS: RECORD_KEYS. ARGV: id, doc, status, score, len, epoch candidate, mark flags (INDEX_RECORD), then index,
// turn pairs. Returns {1, stamp, epoch, revision…} or {0}.
export const CREATE = `${WRITE_TURNS}${STORE_EPOCH}${INDEX_RECORD}if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
redis.call('DEL', KEYS[3], KEYS[4])
local out = {1, 0, storeEpoch(ARGV[6])}
out[2] = writeTurns(out, 8, tonumber(ARGV[5]))
redis.call('HSET', KEYS[1], 'v', 1, 'st', ARGV[3], 'doc', ARGV[2], 'tr', out[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
indexRecord(7, ARGV[1], ARGV[3], ARGV[4], ARGV[7])
return out`;

// KEYS: session, turnrevs, meta. ARGV: the turn list's stamp the reader knows ('' none), the epoch it knows it
// under, an epoch candidate (named if the meta hash has none: STORE_EPOCH). Returns nil (no session), {v, doc,
// epoch} (schema 1: the turns are in doc), {v, doc, epoch, stamp} (the list is the one the reader knows) or {v,
// doc, epoch, stamp, {index, revision, …}}.
export const GET = `local cur = redis.call('HMGET', KEYS[1], 'v', 'doc', 'tr')
if not cur[1] then return false end
local epoch = redis.call('HGET', KEYS[3], 'turnStore')
if not epoch then
  redis.call('HSET', KEYS[3], 'turnStore', ARGV[3])
  epoch = ARGV[3]
end
if not cur[3] then return {cur[1], cur[2], epoch} end
if cur[3] == ARGV[1] and epoch == ARGV[2] then return {cur[1], cur[2], epoch, cur[3]} end
return {cur[1], cur[2], epoch, cur[3], redis.call('HGETALL', KEYS[2])}`;

// KEYS: session, turns, meta. ARGV: stamp, epoch, index…. The turns' JSON, or nil when the turn list is no longer
// `stamp` of `epoch`.
export const GET_TURNS = `if redis.call('HGET', KEYS[1], 'tr') ~= ARGV[1] or redis.call('HGET', KEYS[3], 'turnStore') ~= ARGV[2] then return false end
return redis.call('HMGET', KEYS[2], unpack(ARGV, 3))`;

/** turns a GET_TURNS asks for at most (Lua's unpack is bounded by its stack) */
export const TURNS_PER_READ = 1000;

// KEYS: session, index, lease, events, evmeta, turns, turnrevs, then the INDEX_KEYS. ARGV: id, before. Deletes a
// session that ended (closed or moved) before `before`, and takes it out of the status and mark indexes.
export const DELETE_ENDED = `${INDEX_RECORD}local st = redis.call('HGET', KEYS[1], 'st')
if st ~= 'closed' and st ~= 'moved' then return 0 end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) >= tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
redis.call('ZREM', KEYS[2], ARGV[1])
unindexRecord(8, ARGV[1])
return 1`;

// An entry's size, in its bounds and in a page's: the bytes of its JSON, without the member's `<seq> ` prefix (what
// SQLite's `bytes` column holds), so both stores keep and page the same entries.
const JSON_BYTES = `local function jsonBytes(m) return #m - string.find(m, ' ', 1, true) end
`;

// KEYS: events, evmeta (j: the JSON bytes held, d: the highest seq dropped), lease. ARGV: fence (the token of the
// lease take the entries were numbered under, '' none: a token is never empty), keep, maxBytes, then seq, member
// pairs. Fenced, nothing is written unless the lease is that take now (an expired one is gone: GET finds nothing); returns -1 then,
// else the entries held. An entry at a seq the log holds replaces the one there (as SQLite's primary key does: a re-sent update);
// only an entry at or below the highest seq held is looked up (O(log n)), so a call that appends newer entries makes
// one lookup in all. The oldest entries go while more than `keep` or `maxBytes` are held, never the newest of all. A
// log without `j` (new, or written before it: its `b` counted the prefixes too) is counted once from its members.
export const APPEND_EVENTS = `${JSON_BYTES}if ARGV[1] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end
local total = tonumber(redis.call('HGET', KEYS[2], 'j') or '-1')
if total < 0 then
  total = 0
  for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do total = total + jsonBytes(m) end
  redis.call('HDEL', KEYS[2], 'b')
end
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]
if top then top = tonumber(top) end
for i = 4, #ARGV, 2 do
  if top and tonumber(ARGV[i]) <= top then
    for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[i], ARGV[i])) do
      redis.call('ZREM', KEYS[1], old)
      total = total - jsonBytes(old)
    end
  else
    top = tonumber(ARGV[i])
  end
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
  total = total + jsonBytes(ARGV[i + 1])
end
local keep = tonumber(ARGV[2])
local maxBytes = tonumber(ARGV[3])
local dropped = tonumber(redis.call('HGET', KEYS[2], 'd') or '0')
local n = redis.call('ZCARD', KEYS[1])
while n > 1 and (n > keep or total > maxBytes) do
  local first = redis.call('ZPOPMIN', KEYS[1])
  total = total - jsonBytes(first[1])
  if tonumber(first[2]) > dropped then dropped = tonumber(first[2]) end
  n = n - 1
end
if total < 0 then total = 0 end
redis.call('HSET', KEYS[2], 'j', total, 'd', dropped)
return n`;

// KEYS: events. ARGV: direction (`up`: oldest first, after a seq; `down`: newest first), from (the exclusive score
// bound to start at: `(<afterSeq>`, or `+inf`), limit, maxBytes. A page of the log: at most `limit` entries and, past
// the first, at most `maxBytes` of JSON (jsonBytes), read a few at a time so that what lies past the page is not
// copied; returns {past (1|0), the score of the first entry past the page (0: none), member, …}, in reading order.
// One entry a seq: a log appended to before an entry at a seq replaced the one there (APPEND_EVENTS) may hold
// several members at a seq until that seq is appended again; the page has the first of them (by member: the
// smallest), read either way, and counts only it. Reading up, that one comes first and the others are skipped;
// reading down it comes last, so a member that may have others at its seq below it (the next one read has its
// seq, or it ends a full batch) is looked up (O(log n)).
export const READ_EVENTS = `${JSON_BYTES}local up = ARGV[1] == 'up'
local from = ARGV[2]
local limit = tonumber(ARGV[3])
local maxBytes = tonumber(ARGV[4])
local out = {0, 0}
local n = 0
local total = 0
local last = false
while true do
  local want = limit + 1 - n
  if want > 32 then want = 32 end
  local batch
  if up then
    batch = redis.call('ZRANGEBYSCORE', KEYS[1], from, '+inf', 'WITHSCORES', 'LIMIT', 0, want)
  else
    batch = redis.call('ZREVRANGEBYSCORE', KEYS[1], from, '-inf', 'WITHSCORES', 'LIMIT', 0, want)
  end
  for i = 1, #batch, 2 do
    local score = batch[i + 1]
    if score ~= last then
      local m = batch[i]
      if not up and (batch[i + 3] == score or (i + 1 == #batch and #batch == want * 2)) then
        m = redis.call('ZRANGEBYSCORE', KEYS[1], score, score, 'LIMIT', 0, 1)[1]
      end
      total = total + jsonBytes(m)
      if n >= limit or (n > 0 and total > maxBytes) then
        out[1] = 1
        out[2] = score
        return out
      end
      n = n + 1
      out[n + 2] = m
      last = score
    end
    from = '(' .. score
  end
  if #batch < want * 2 then return out end
end`;

// KEYS: events. The highest seq the log holds (0: none), without sending its entry.
export const LAST_EVENT_SEQ = `local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #last == 0 then return 0 end
return tonumber(last[2])`;

// KEYS: events, evmeta. ARGV: seq. Drops the entries through `seq` and raises the dropped-through mark to it.
export const DROP_THROUGH = `${JSON_BYTES}local total = tonumber(redis.call('HGET', KEYS[2], 'j') or '-1')
if total >= 0 then
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])) do total = total - jsonBytes(m) end
  if total < 0 then total = 0 end
  redis.call('HSET', KEYS[2], 'j', total)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local dropped = tonumber(redis.call('HGET', KEYS[2], 'd') or '0')
if tonumber(ARGV[1]) > dropped then redis.call('HSET', KEYS[2], 'd', ARGV[1]) end
return 1`;

// KEYS: RECORD_KEYS. ARGV: id, doc, status, score, expectedVersion, the turn-list stamp the kept turns are
// stored under ('' when the write keeps none: it writes every index below len), len, epoch candidate, the epoch
// the stamp is of, mark flags (INDEX_RECORD), then index, turn pairs. Returns {1, stamp, epoch, revision…}, {-1}
// (no session), {0} (version conflict) or {-2} (the list is not that stamp of that epoch).
export const UPDATE = `${WRITE_TURNS}${STORE_EPOCH}${INDEX_RECORD}local cur = redis.call('HMGET', KEYS[1], 'v', 'tr')
if not cur[1] then return {-1} end
if tonumber(cur[1]) ~= tonumber(ARGV[5]) then return {0} end
local epoch = storeEpoch(ARGV[8])
if ARGV[6] ~= '' and (cur[2] ~= ARGV[6] or epoch ~= ARGV[9]) then return {-2} end
local out = {1, 0, epoch}
out[2] = writeTurns(out, 11, tonumber(ARGV[7]))
redis.call('HSET', KEYS[1], 'v', tonumber(cur[1]) + 1, 'st', ARGV[3], 'doc', ARGV[2], 'tr', out[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
indexRecord(7, ARGV[1], ARGV[3], ARGV[4], ARGV[10])
return out`;

// KEYS: RECORD_KEYS, transfer. ARGV: id, doc, status, score, offeredVersion, len, epoch candidate, mark flags
// (INDEX_RECORD), then index, turn pairs (all of them). Returns {'ok', version, stamp, epoch, revision…}, {'conflict', status}, {'other'} or,
// for a transfer imported before, the record as it is stored now, read in the same script: {'dup', v, doc, epoch}
// (schema 1: the turns are in doc) or {'dup', v, doc, epoch, stamp, {index, revision, …}, {index, turn JSON, …}}.
export const IMPORT = `${WRITE_TURNS}${STORE_EPOCH}${INDEX_RECORD}local seen = redis.call('GET', KEYS[${RECORD_KEYS + 1}])
if seen then
  if seen ~= ARGV[1] then return {'other'} end
  local rec = redis.call('HMGET', KEYS[1], 'v', 'doc', 'tr')
  if not rec[1] then return {'other'} end
  local epoch = storeEpoch(ARGV[7])
  if not rec[3] then return {'dup', rec[1], rec[2], epoch} end
  return {'dup', rec[1], rec[2], epoch, rec[3], redis.call('HGETALL', KEYS[4]), redis.call('HGETALL', KEYS[3])}
end
local cur = redis.call('HMGET', KEYS[1], 'v', 'st')
if cur[1] and cur[2] ~= 'moved' then return {'conflict', cur[2]} end
local v = tonumber(ARGV[5])
if cur[1] and tonumber(cur[1]) > v then v = tonumber(cur[1]) end
v = v + 1
local out = {'ok', tostring(v), 0, storeEpoch(ARGV[7])}
out[3] = writeTurns(out, 9, tonumber(ARGV[6]))
redis.call('HSET', KEYS[1], 'v', v, 'st', ARGV[3], 'doc', ARGV[2], 'tr', out[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
indexRecord(7, ARGV[1], ARGV[3], ARGV[4], ARGV[8])
redis.call('SET', KEYS[${RECORD_KEYS + 1}], ARGV[1])
return out`;

// KEYS: lease (its value the take's token, `<holder>#<nonce>`, or a holder id alone: written before tokens,
// lease-token.ts). ARGV: holder, the new take's token, ttl. Takes the lease when it is free (an expired one is gone)
// or a take of the same holder's (its previous life), with the new token: returns 1, else 0.
export const ACQUIRE = `local cur = redis.call('GET', KEYS[1])
if cur then
  local at = string.find(cur, '${LEASE_TOKEN_SEP}', 1, true)
  if at then cur = string.sub(cur, 1, at - 1) end
  if cur ~= ARGV[1] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`;
// KEYS: lease. ARGV: the take's token, ttl
export const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;
// KEYS: lease. ARGV: the take's token
export const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * KEYS: the `sessions` index, or a status's (`sessions:st:<status>`: the same scores). ARGV: the position's score ('' for the first page) and id, how many. Returns the ids
 * after that position in the order of SessionPosition (score descending, then id descending as bytes, the order
 * ZREVRANGE keeps), each followed by its score: read from the index at the position (ZREVRANK), never from its start.
 * A position whose session is no longer at that score (updated, deleted) is looked for among the ids at that score,
 * compared byte by byte here: Lua's `<` on strings follows the server's locale, Redis's order does not.
 */
export const INDEX_AFTER = `local n = tonumber(ARGV[3])
if ARGV[1] == '' then return redis.call('ZREVRANGE', KEYS[1], 0, n - 1, 'WITHSCORES') end
local at = redis.call('ZSCORE', KEYS[1], ARGV[2])
if at and tonumber(at) == tonumber(ARGV[1]) then
  local from = redis.call('ZREVRANK', KEYS[1], ARGV[2]) + 1
  return redis.call('ZREVRANGE', KEYS[1], from, from + n - 1, 'WITHSCORES')
end
local function below(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local out = {}
for _, id in ipairs(redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])) do
  if #out >= 2 * n then return out end
  if below(id, ARGV[2]) then
    out[#out + 1] = id
    out[#out + 1] = ARGV[1]
  end
end
local rest = redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '-inf', 'WITHSCORES', 'LIMIT', 0, n - #out / 2)
for _, v in ipairs(rest) do out[#out + 1] = v end
return out`;

/**
 * KEYS: meta, the `sessions` index. ARGV: this Switchyard's key schema version. Returns the version the keys had (0:
 * none, and they take this one), and 1 when the status and mark indexes are to be built from the records (REINDEX):
 * a version below this one is raised at once (an older Switchyard refuses to start on the keys from then on) and
 * `_reindex` set in the same step, dropped by the open that has built them (RedisStore.reindex); one that stopped
 * half-way leaves it set, and the next open builds them again. Keys with records and no version are indexed too. A
 * newer version is left as it is (the caller refuses it). A new prefix is written with HSETNX alone, as before.
 */
export const CHECK_SCHEMA = `local want = tonumber(ARGV[1])
if redis.call('HSETNX', KEYS[1], '_schema', want) == 1 then
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('HSETNX', KEYS[1], '_reindex', '1') end
  return {0, redis.call('HEXISTS', KEYS[1], '_reindex')}
end
local v = tonumber(redis.call('HGET', KEYS[1], '_schema')) or want
if v > want then return {v, 0} end
if v < want then redis.call('HSET', KEYS[1], '_schema', want, '_reindex', '1') end
return {v, redis.call('HEXISTS', KEYS[1], '_reindex')}`;

/**
 * Builds the status and mark indexes of records written before they were kept (a key schema below 3). KEYS: the
 * `sessions` index, the INDEX_KEYS, then one session hash a record. ARGV: per record, its id, the version (`v`) and
 * the SHA-1 of the `doc` the caller read ('' each when it read none), and the mark flags it computed from that doc.
 * A record still in the `sessions` index is put in its status's index (its `st` now) at its score there, and out
 * of the others. Its marks only if it is still that version with that doc (so a deletion and a create in between,
 * back at version 1, is not taken for it): one changed since had its marks set by the write that changed it. One
 * deleted is left alone (its deletion took it out). Idempotent, so two opens building the indexes at once agree.
 * Returns how many were indexed.
 */
export const REINDEX = `${INDEX_RECORD}local n = 0
for i = 1, #ARGV, 4 do
  local id = ARGV[i]
  local cur = redis.call('HMGET', KEYS[${INDEX_KEYS + 1} + (i + 3) / 4], 'v', 'st', 'doc')
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and cur[2] then
    local marks = ''
    if cur[1] and cur[1] == ARGV[i + 1] and cur[3] and redis.sha1hex(cur[3]) == ARGV[i + 2] then marks = ARGV[i + 3] end
    indexRecord(2, id, cur[2], score, marks)
    n = n + 1
  end
end
return n`;
