// The websocket to the gateway: numbered frames, acks and pushed decisions,
// and reconnection with backoff. It knows nothing about the queue; index.js
// decides what to (re)send when the socket opens, an ack arrives or a rate
// limit's wait is over (a `limited` reply; the close 4429 that follows three
// in a row is retried like any other, after that wait at least), what to
// send over HTTP while sockets fail, and what to tell the page when the
// gateway refuses this client for good.
import { backoff, fatal } from './retry.js'
import { iso } from './util.js'

// A connection counts as good (and the backoff starts again from its base)
// once the gateway has acked a frame on it or it stayed open this long: a
// socket that opens only to be closed at once (an overloaded gateway's 1013)
// must not reset the backoff, or every browser would hammer it.
const GOOD_MS = 5000

// url() is asked on every connect: the handshake carries who the page has
// proved to be (a signed user id), which can change while the page is open.
export function createTransport(url, on, baseMs) {
  let ws = null
  let attempt = 0
  let fails = 0 // connects in a row that never opened (a blocked or down gateway)
  let timer = 0
  let seq = 0
  let stopped = true
  let openedAt = 0
  // No frame sent (and no reconnect) before this time: the gateway's rate
  // limit said when it would fit again (a `limited` reply's retryAfter).
  let until = 0

  function retry() {
    if (!timer && !stopped) timer = setTimeout(connect, Math.max(backoff(attempt++, baseMs), until - Date.now()))
  }

  function connect() {
    clearTimeout(timer)
    timer = 0
    if (ws) return
    stopped = false
    let sock
    try {
      sock = new WebSocket(url())
    } catch (e) {
      fails++
      on.close()
      return retry()
    }
    ws = sock
    sock.onopen = () => {
      fails = 0
      openedAt = Date.now()
      seq = 0 // seq numbers are per connection
      on.open()
    }
    sock.onmessage = (m) => {
      let msg = {} // anything but an object (or unparsable) means nothing
      try {
        msg = Object(JSON.parse(m.data))
      } catch (e) {}
      if ('ack' in msg) {
        attempt = 0
        on.ack(msg)
      } else if ('limited' in msg) {
        // Over the gateway's rate limit: the frame was neither stored nor
        // acked; index.js resends it once `until` has passed.
        until = Date.now() + (+msg.retryAfter || 1) * 1e3
        on.limited(msg.limited, until)
      } else if (msg.decision) on.decision(msg.decision, msg.id)
    }
    // "error" is always followed by "close", so only close reconnects.
    sock.onclose = (e) => {
      if (ws !== sock) return
      ws = null
      if (!openedAt) fails++
      else if (Date.now() - openedAt >= GOOD_MS) attempt = 0
      openedAt = 0
      on.close()
      if (!fatal(e.code)) return retry()
      stopped = true
      on.refused(e.code, e.reason)
    }
  }

  return {
    connect,
    isOpen: () => !!ws && ws.readyState === 1,
    // When frames may be sent again (0, or a past time: now).
    until: () => until,
    fails: () => fails,
    // Close and connect again (with the usual backoff), e.g. to prove a new identity.
    reconnect() {
      if (ws) ws.close()
    },
    // The network is back: try now instead of waiting out the backoff.
    now: () => stopped || connect(),
    // Consent withdrawn: close (on.close() follows) and stay closed until connect().
    stop() {
      stopped = true
      clearTimeout(timer)
      timer = 0
      if (ws) ws.close()
    },
    send(batch) {
      ws.send(JSON.stringify({ seq: ++seq, batch, sentAt: iso() }))
      return seq
    },
  }
}
