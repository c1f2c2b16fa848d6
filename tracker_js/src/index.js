// Public API and wiring: reads the <script> tag's settings, replays calls the
// snippet queued before this file loaded, and moves events from the
// persistent queue to the gateway.
import { anonymousId, loadUserId, saveUserId } from './ids.js'
import { createQueue } from './queue.js'
import { createTransport } from './transport.js'
import * as build from './events.js'
import { sendBeacons } from './beacon.js'

const MAX_BATCH = 100
const MAX_FRAMES_IN_FLIGHT = 4 // so a lagging gateway's withheld acks slow us down
const QUEUE_CAP = 1000

function main() {
  const w = window
  const stub = w.attimo
  if (stub && stub.loaded) return // the script was included twice

  const tag = document.currentScript || document.querySelector('script[data-key]')
  const cfg = (tag && tag.dataset) || {}
  const writeKey = cfg.key || ''
  const gateway = (cfg.gateway || '').replace(/\/$/, '')
  const flushMs = cfg.flushMs ? +cfg.flushMs : 200

  const who = { anonymousId: anonymousId(), userId: loadUserId() }
  const queue = createQueue('attimo_q', QUEUE_CAP)
  const handlers = { decision: [] }
  // seq -> batch sent on the current connection and not yet acked
  let inflight = new Map()
  let sentIds = new Set()
  const beaconed = new Set()
  let flushTimer = 0
  let keyRefused = false

  function flush() {
    clearTimeout(flushTimer)
    flushTimer = 0
    if (!transport.isOpen()) return
    const pending = queue.all().filter((e) => !sentIds.has(e.messageId))
    while (pending.length && inflight.size < MAX_FRAMES_IN_FLIGHT) {
      const batch = pending.splice(0, MAX_BATCH)
      inflight.set(transport.send(batch), batch)
      for (const e of batch) sentIds.add(e.messageId)
    }
  }

  function enqueue(ev) {
    queue.push(ev)
    if (!flushTimer) flushTimer = setTimeout(flush, flushMs)
  }

  function onAck(msg) {
    const batch = inflight.get(msg.ack)
    // {"ack": n, "error": ...} refuses a whole frame (too big, malformed):
    // like a rejected event it would fail again, so it is dropped, not resent.
    if (msg.error) console.warn('attimo: frame rejected', msg.error)
    if (!batch) return
    inflight.delete(msg.ack)
    // Rejected events are invalid, not unlucky: resending would fail again.
    for (const r of msg.rejected || []) {
      const e = batch[r.index]
      console.warn('attimo: event rejected', e && (e.event || e.type), r.error)
    }
    const ids = new Set(batch.map((e) => e.messageId))
    queue.remove(ids)
    for (const id of ids) sentIds.delete(id)
    flush()
  }

  function onDecision(d) {
    for (const fn of handlers.decision) {
      try {
        fn(d)
      } catch (e) {
        console.error(e)
      }
    }
    w.dispatchEvent(new CustomEvent('attimo:decision', { detail: d }))
  }

  const transport = createTransport(
    gateway + '/v1/stream?key=' + encodeURIComponent(writeKey),
    {
      open: flush,
      ack: onAck,
      decision: onDecision,
      // Unacked frames are forgotten; their events are still in the queue and
      // go out again (same messageIds) on the next connection.
      close() {
        inflight = new Map()
        sentIds = new Set()
      },
      // The transport has stopped for good. Events stay queued in localStorage
      // (capped): once the key is fixed they go out on the visitor's next page.
      refused(code, reason) {
        keyRefused = true
        console.error(
          'attimo: write key ' + JSON.stringify(writeKey) + ' refused by the gateway (' +
            (reason ? code + ' ' + reason : code) + '); not retrying'
        )
      },
    },
    cfg.retryBaseMs ? +cfg.retryBaseMs : 500
  )

  function onLeave(ev) {
    if (ev.type === 'pagehide' || document.visibilityState === 'hidden') {
      queue.persist()
      if (transport.isOpen()) return flush()
      // The API refuses the same key (401 / 403): beacons would only add load.
      if (keyRefused) return
      const pending = queue.all().filter((e) => !beaconed.has(e.messageId))
      // Beaconed events stay queued: a beacon's success only means "handed to
      // the browser", and a resend is deduped by messageId.
      for (const id of sendBeacons(cfg.api, writeKey, pending)) beaconed.add(id)
    }
  }

  const api = {
    track(name, props) {
      enqueue(build.track(who, name, props))
    },
    page(name, props) {
      enqueue(build.page(who, name, props))
    },
    identify(userId, traits) {
      if (userId && typeof userId === 'object') {
        traits = userId
        userId = null
      }
      if (userId != null) {
        who.userId = String(userId)
        saveUserId(who.userId)
      }
      enqueue(build.identify(who, traits))
    },
    reset() {
      who.anonymousId = anonymousId(true)
      who.userId = null
      saveUserId(null)
    },
    on(name, fn) {
      if (handlers[name] && typeof fn === 'function') handlers[name].push(fn)
    },
    flush,
    anonymousId: () => who.anonymousId,
    userId: () => who.userId,
  }

  function attimo(method) {
    const fn = api[method]
    if (!fn) return console.warn('attimo: unknown method', method)
    return fn.apply(null, [].slice.call(arguments, 1))
  }
  attimo.loaded = true
  attimo.version = build.VERSION
  w.attimo = attimo

  if (cfg.autoPage !== 'false') api.page()
  for (const args of (stub && stub.q) || []) attimo.apply(null, args)

  w.addEventListener('pagehide', onLeave)
  document.addEventListener('visibilitychange', onLeave)
  transport.connect()
}

main()
