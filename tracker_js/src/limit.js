// The client's rate limit: a token bucket of `burst` events refilled at
// `rate` per second. A page in a loop (or a bug) costs the visitor's queue
// and the server at most that much; what it drops is counted.
export function bucket(rate, burst) {
  let tokens = burst
  let t = Date.now()
  return () => {
    const now = Date.now()
    tokens = Math.min(burst, tokens + ((now - t) * rate) / 1000)
    t = now
    return tokens >= 1 && tokens--
  }
}
