/*
 * The Redis function library that applies edits and reads rooms. Loaded
 * with FUNCTION LOAD REPLACE on every connect, so a server upgrade replaces
 * it in Redis.
 *
 * al_apply keys: objs, revs, seq, log; args: channel, stream max, event
 * body, object count, then (id, expected rev, record) per object. It
 * returns {seq} when written, or {0} when an expected rev no longer holds.
 * al_load keys: objs, revs, seq; returns {seq, objs as pairs, revs as
 * pairs}. al_range keys: log; args: after, count; returns {id of the
 * oldest entry or "0-0", entries after the given seq}.
 */
#ifndef AL_STORE_LUA_H
#define AL_STORE_LUA_H

static const char store_lua_library[] =
    "#!lua name=annolive\n"
    "local function apply(keys, args)\n"
    "  local n = tonumber(args[4])\n"
    "  for i = 0, n - 1 do\n"
    "    local at = 5 + i * 3\n"
    "    local rev = redis.call('HGET', keys[2], args[at]) or '0'\n"
    "    if rev ~= args[at + 1] then return {0} end\n"
    "  end\n"
    "  local seq = redis.call('INCR', keys[3])\n"
    "  for i = 0, n - 1 do\n"
    "    local at = 5 + i * 3\n"
    "    redis.call('HSET', keys[1], args[at], args[at + 2])\n"
    "    redis.call('HSET', keys[2], args[at], seq)\n"
    "  end\n"
    "  redis.call('XADD', keys[4], 'MAXLEN', '~', args[2], seq .. '-0',\n"
    "             'e', args[3])\n"
    "  redis.call('PUBLISH', args[1], seq .. ' ' .. args[3])\n"
    "  return {seq}\n"
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
    "  return {oldest, redis.call('XRANGE', keys[1], '(' .. args[1] .. '-0',\n"
    "                             '+', 'COUNT', args[2])}\n"
    "end\n"
    "redis.register_function('al_apply', apply)\n"
    "redis.register_function{function_name = 'al_load', callback = load,\n"
    "                        flags = {'no-writes'}}\n"
    "redis.register_function{function_name = 'al_range', callback = range,\n"
    "                        flags = {'no-writes'}}\n";

#endif
