// Reconnect delay: exponential so a down gateway is not hammered, jittered
// (±50 %) so thousands of browsers do not reconnect in lock-step after an
// outage, capped so a visitor is not left waiting minutes once it is back.
export function backoff(attempt, base, cap, rand) {
  base = base || 500
  cap = cap || 30000
  const d = Math.min(cap, base * Math.pow(2, attempt)) * (0.5 + (rand || Math.random)())
  return Math.round(Math.min(cap, d))
}
