// The websocket to the gateway: numbered frames, acks and pushed decisions,
// and reconnection with backoff. It knows nothing about the queue; index.js
// decides what to (re)send when the socket opens or an ack arrives, and what
// to tell the page when the gateway refuses this client for good.
import { backoff, fatal } from './retry.js'

// url() is asked on every connect: the handshake carries who the page has
// proved to be (a signed user id), which can change while the page is open.
export function createTransport(url, on, baseMs) {
  let ws = null
  let attempt = 0
  let timer = 0
  let seq = 0
  let stopped = false

  function retry() {
    if (!timer && !stopped) timer = setTimeout(connect, backoff(attempt++, baseMs))
  }

  function connect() {
    timer = 0
    let sock
    try {
      sock = new WebSocket(url())
    } catch (e) {
      return retry()
    }
    ws = sock
    sock.onopen = () => {
      attempt = 0
      seq = 0 // seq numbers are per connection
      on.open()
    }
    sock.onmessage = (m) => {
      let msg
      try {
        msg = JSON.parse(m.data)
      } catch (e) {
        return
      }
      if (!msg || typeof msg !== 'object') return
      if ('ack' in msg) on.ack(msg)
      else if (msg.decision) on.decision(msg.decision, msg.id)
    }
    // "error" is always followed by "close", so only close reconnects.
    sock.onclose = (e) => {
      if (ws !== sock) return
      ws = null
      on.close()
      if (!fatal(e.code)) return retry()
      stopped = true
      on.refused(e.code, e.reason)
    }
  }

  return {
    connect,
    isOpen: () => !!ws && ws.readyState === 1,
    // Close and connect again (with the usual backoff), e.g. to prove a new identity.
    reconnect() {
      if (ws) ws.close()
    },
    send(batch) {
      seq += 1
      ws.send(JSON.stringify({ seq, batch, sentAt: new Date().toISOString() }))
      return seq
    },
  }
}
