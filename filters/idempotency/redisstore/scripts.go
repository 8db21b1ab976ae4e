package redisstore

// The scripts run the read-check-write of one operation inside Redis, so
// every operation is atomic per key whatever the number of replicas. Their
// arguments are strings: fingerprints and tokens are uint64 and would lose
// bits as Lua numbers (doubles), so they are only compared as strings.
// Times are unix microseconds, exact as doubles until the year 2255.
//
// Hash fields: st (1 in flight, 2 completed), fp, tok, http, grpc, exp.

// claimSrc: KEYS[1] record; ARGV now_us, exp_us, fp, token, pttl_ms.
// Returns {1, old_state} when claimed (old_state "" when there was no
// record, else the state of the expired record it replaced), or
// {0, st, fp, http, grpc, exp} for a live record.
const claimSrc = `
local h = redis.call('HMGET', KEYS[1], 'st', 'fp', 'http', 'grpc', 'exp')
if h[1] and tonumber(h[5]) > tonumber(ARGV[1]) then
  return {0, h[1], h[2], h[3] or '0', h[4] or '-1', h[5]}
end
local old = h[1] or ''
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'st', '1', 'fp', ARGV[3], 'tok', ARGV[4], 'http', '0', 'grpc', '-1', 'exp', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, old}
`

// finishSrc: KEYS[1] record; ARGV now_us, token, op ("complete" or
// "release"), http, grpc, exp_us, pttl_ms. Returns {1} when the record
// moved, or {0, why, st} when refused: why is "none" (no record),
// "expired" (the record expired and is deleted; st its state), "stale"
// (another claim holds the record) or "state" (the token's record is not
// in flight).
const finishSrc = `
local h = redis.call('HMGET', KEYS[1], 'st', 'tok', 'exp')
if not h[1] then
  return {0, 'none', ''}
end
if tonumber(h[3]) <= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[1])
  return {0, 'expired', h[1]}
end
if h[2] ~= ARGV[2] then
  return {0, 'stale', h[1]}
end
if h[1] ~= '1' then
  return {0, 'state', h[1]}
end
if ARGV[3] == 'release' then
  redis.call('DEL', KEYS[1])
  return {1}
end
redis.call('HSET', KEYS[1], 'st', '2', 'http', ARGV[4], 'grpc', ARGV[5], 'exp', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
return {1}
`
