/*
 * The Redis function library that applies edits and reads rooms. Loaded
 * with FUNCTION LOAD REPLACE on every connect, so a server upgrade replaces
 * it in Redis.
 *
 * al_apply keys: objs, revs, seq, log, actors, acks, the actor's ack queue;
 * args: channel, stream max, event body, object count, actor, opseq, ack
 * results, read count, then (id, expected rev, record) per object written
 * and (id, expected rev) per object only read. It returns
 * {"dup", "SEQ RESULTS"} for a batch seen before, {"old"} for one older
 * than the acks kept, {"stale"} when an expected rev no longer holds, and
 * {"ok", seq} otherwise (seq 0 when the batch wrote no object).
 * al_load keys: objs, revs, seq; returns {seq, objs as pairs, revs as
 * pairs}. al_range keys: log, seq; args: after, count; returns {id of the
 * oldest entry or "0-0", entries after the given seq, the room's seq}.
 */
#ifndef AL_STORE_LUA_H
#define AL_STORE_LUA_H

/* NOTE: the actors hash, the acks and each actor's ack queue are never
 * removed, so every actor name a room has seen stays in Redis. */
#define STORE_ACKS_KEPT 256 /* acks kept per actor and room */
#define STR(x) #x
#define XSTR(x) STR(x)

static const char store_lua_library[] =
    "#!lua name=annolive\n"
    "local ACKS_KEPT = " XSTR(STORE_ACKS_KEPT) "\n"
    "local function apply(keys, args)\n"
    "  local actor, opseq = args[5], tonumber(args[6])\n"
    "  local ack_field = actor .. ' ' .. args[6]\n"
    "  local last = tonumber(redis.call('HGET', keys[5], actor) or '0')\n"
    "  if opseq <= last then\n"
    "    local ack = redis.call('HGET', keys[6], ack_field)\n"
    "    if ack then return {'dup', ack} end\n"
    "    return {'old'}\n"
    "  end\n"
    "  local n, reads = tonumber(args[4]), tonumber(args[8])\n"
    "  for i = 0, n - 1 do\n"
    "    local at = 9 + i * 3\n"
    "    local rev = redis.call('HGET', keys[2], args[at]) or '0'\n"
    "    if rev ~= args[at + 1] then return {'stale'} end\n"
    "  end\n"
    "  for i = 0, reads - 1 do\n"
    "    local at = 9 + n * 3 + i * 2\n"
    "    local rev = redis.call('HGET', keys[2], args[at]) or '0'\n"
    "    if rev ~= args[at + 1] then return {'stale'} end\n"
    "  end\n"
    "  local seq = 0\n"
    "  if n > 0 then\n"
    "    seq = redis.call('INCR', keys[3])\n"
    "    for i = 0, n - 1 do\n"
    "      local at = 9 + i * 3\n"
    "      redis.call('HSET', keys[1], args[at], args[at + 2])\n"
    "      redis.call('HSET', keys[2], args[at], seq)\n"
    "    end\n"
    "    redis.call('XADD', keys[4], 'MAXLEN', '~', args[2], seq .. '-0',\n"
    "               'e', args[3])\n"
    "    redis.call('PUBLISH', args[1], seq .. ' ' .. args[3])\n"
    "  end\n"
    "  redis.call('HSET', keys[5], actor, args[6])\n"
    "  redis.call('HSET', keys[6], ack_field, seq .. ' ' .. args[7])\n"
    "  if redis.call('RPUSH', keys[7], args[6]) > ACKS_KEPT then\n"
    "    local old = redis.call('LPOP', keys[7])\n"
    "    redis.call('HDEL', keys[6], actor .. ' ' .. old)\n"
    "  end\n"
    "  return {'ok', seq}\n"
    "end\n"
    "local function load(keys)\n"
    "  local seq = redis.call('GET', keys[3]) or '0'\n"
    "  return {seq, redis.call('HGETALL', keys[1]),\n"
    "          redis.call('HGETALL', keys[2])}\n"
    "end\n"
    "local function range(keys, args)\n"
    "  local first = redis.call('XRANGE', keys[1], '-', '+', 'COUNT', 1)\n"
    "  local oldest = '0-0'\n"
    "  if first[1] then oldest = first[1][1] end\n"
    "  local entries = redis.call('XRANGE', keys[1], '(' .. args[1] .. '-0',\n"
    "                             '+', 'COUNT', args[2])\n"
    "  return {oldest, entries, redis.call('GET', keys[2]) or '0'}\n"
    "end\n"
    "redis.register_function('al_apply', apply)\n"
    "redis.register_function{function_name = 'al_load', callback = load,\n"
    "                        flags = {'no-writes'}}\n"
    "redis.register_function{function_name = 'al_range', callback = range,\n"
    "                        flags = {'no-writes'}}\n";

#endif
