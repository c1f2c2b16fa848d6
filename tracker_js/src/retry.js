// Reconnect delay: exponential so a down gateway is not hammered, jittered
// (±50 %) so thousands of browsers do not reconnect in lock-step after an
// outage, capped so a visitor is not left waiting minutes once it is back.
export function backoff(attempt, base, cap, rand) {
  cap = cap || 3e4
  return Math.round(Math.min(cap, Math.min(cap, (base || 500) * 2 ** attempt) * (0.5 + (rand || Math.random)())))
}

// Close codes that mean "this client is refused": 4401 unknown write key, 4403
// origin not allowed (the gateway's), 1008 policy violation (a proxy's).
// Reconnecting would fail the same way forever. Every other code, 1006 (a
// refused handshake or an outage) included, may heal and is retried; a code a
// newer gateway adds costs an old tracker a few backed-off retries, not its data.
export function fatal(code) {
  return code === 4401 || code === 4403 || code === 1008
}
