// Last-chance delivery when the page goes away with no open socket: the
// browser keeps a beacon alive after unload, a websocket it does not.
// Chrome caps in-flight beacon data at 64 KB, so events go in small chunks
// and we stop at the first refusal.
const CHUNK = 50

export function sendBeacons(api, writeKey, events) {
  if (!api || !navigator.sendBeacon) return []
  const sent = []
  for (let i = 0; i < events.length; i += CHUNK) {
    const batch = events.slice(i, i + CHUNK)
    const body = JSON.stringify({ batch, writeKey, sentAt: new Date().toISOString() })
    // text/plain keeps the request "simple": no CORS preflight, which a beacon
    // could not wait for anyway.
    const blob = new Blob([body], { type: 'text/plain' })
    if (!navigator.sendBeacon(api.replace(/\/$/, '') + '/v1/batch', blob)) break
    for (const e of batch) sent.push(e.messageId)
  }
  return sent
}
