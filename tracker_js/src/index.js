// Public API and wiring: reads the <script> tag's settings, replays calls the
// snippet queued before this file loaded, moves events from the persistent
// queue to the gateway, and keeps the visitor's current decisions.
//
// Popups and product strips live in a second file (attimo-widgets.js),
// loaded only on pages that have a popup to consider or a strip to render,
// so that every other page view pays for the tracker alone.
import { anonymousId, loadUserId, saveUserId, loadSignature, saveSignature } from './ids.js'
import { createQueue } from './queue.js'
import { createTransport } from './transport.js'
import * as build from './events.js'
import { sendBeacons } from './beacon.js'
import { readDecisions, proof } from './decisions.js'
import { cartAfter } from './cart.js'
import { lsGet, lsSet } from './storage.js'

const MAX_BATCH = 100
const MAX_FRAMES_IN_FLIGHT = 4 // so a lagging gateway's withheld acks slow us down
const QUEUE_CAP = 1000
const CART = 'attimo_cart'

function widgetsUrl(tag, cfg) {
  if (cfg.widgets) return cfg.widgets
  // Next to this file: /tracker.js -> /tracker-widgets.js, /attimo.js -> /attimo-widgets.js.
  return tag && tag.src ? tag.src.replace(/(\.min)?\.js([?#].*)?$/, '-widgets.js') : ''
}

function main() {
  const w = window
  const stub = w.attimo
  if (stub && stub.loaded) return // the script was included twice

  const tag = document.currentScript || document.querySelector('script[data-key]')
  const cfg = (tag && tag.dataset) || {}
  const writeKey = cfg.key || ''
  const gateway = (cfg.gateway || '').replace(/\/$/, '')
  const flushMs = cfg.flushMs ? +cfg.flushMs : 200

  const apiBase = (cfg.api || '').replace(/\/$/, '')
  const nonce = (tag && tag.nonce) || ''

  const who = { anonymousId: anonymousId(), userId: loadUserId(), signature: loadSignature() }
  const queue = createQueue('attimo_q', QUEUE_CAP)
  const handlers = { decision: [], popup: [] }
  // Popup events still unacked when this page started (popups.js holds back their campaigns).
  const unacked = queue.all().filter((e) => /^Popup /.test(e.event))
  let cart = +lsGet(CART) || 0
  let current = null // the visitor's decisions as last read or pushed
  let pushes = 0
  let product = null // the product on screen, when a strip names one
  let started = false
  let widgets = null
  let widgetsAsked = false
  const waiting = [] // strips asked for before the widgets file loaded
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

  function loadWidgets() {
    const src = widgetsUrl(tag, cfg)
    if (widgetsAsked || !src) return
    widgetsAsked = true
    const s = document.createElement('script')
    s.src = src
    s.async = true
    if (nonce) s.nonce = nonce
    document.head.appendChild(s)
  }

  // `pushed`: what to use if the read fails.
  function read(pushed) {
    const before = pushes
    // A push that arrived while this read was in flight is newer than its answer.
    if (apiBase && cfg.decisions !== 'false' && w.fetch) {
      readDecisions(apiBase, writeKey, who, product).then((d) => pushes === before && onDecision(d || pushed))
    } else onDecision(pushed)
  }

  function onPush(d, id) {
    // Addressed to an id this page no longer is (after reset or a new identify): stale.
    if (id && id !== who.anonymousId && id !== who.userId) return
    pushes++
    // A push is composed without the product on screen: read again, with it.
    if (product) read(d)
    else onDecision(d)
  }

  function onDecision(d) {
    if (!d || typeof d !== 'object') return
    current = d
    if (widgets) widgets.decide(d)
    else if (Array.isArray(d.popups) && d.popups.length) loadWidgets()
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
    () => gateway + '/v1/stream?key=' + encodeURIComponent(writeKey) + proof(who),
    {
      open: flush,
      ack: onAck,
      decision: onPush,
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
      const v = cartAfter(cart, name, props)
      if (v !== cart) lsSet(CART, String((cart = v)))
      enqueue(build.track(who, name, props))
    },
    page(name, props) {
      if (widgets) widgets.page() // a new page view may show a popup again
      enqueue(build.page(who, name, props))
    },
    // identify(userId, traits?, {signature}?) or identify(traits, {signature}?).
    // The signature is the site back end's HMAC of userId; decisions for a
    // user id are only read with it.
    identify(userId, traits, opts) {
      if (userId && typeof userId === 'object') {
        opts = traits
        traits = userId
        userId = null
      }
      const had = proof(who)
      if (userId != null && String(userId) !== who.userId) {
        who.userId = String(userId)
        who.signature = null // a signature is only valid for the id it signed
        saveUserId(who.userId)
      }
      if (opts && opts.signature && who.userId) who.signature = String(opts.signature)
      saveSignature(who.signature)
      enqueue(build.identify(who, traits))
      // A socket is verified for one user at its handshake: prove the new identity.
      if (proof(who) !== had) transport.reconnect()
    },
    reset() {
      if (proof(who)) transport.reconnect()
      who.anonymousId = anonymousId(true)
      who.userId = who.signature = null
      saveUserId(null)
      saveSignature(null)
      lsSet(CART, null)
      cart = 0
    },
    on(name, fn) {
      if (handlers[name] && typeof fn === 'function') handlers[name].push(fn)
    },
    // A site that renders popups itself reports: attimo('popup', 'shown' | 'clicked' | 'closed', popup).
    popup(action, p) {
      if (widgets) widgets.popup(action, p)
    },
    // attimo('recommendations', elementOrSelector, {strip, limit, product, currency})
    recommendations(el, opts) {
      const p = opts && opts.product != null ? String(opts.product) : product
      if (p !== product) {
        product = p
        if (started) read() // the on-load read has gone: read the strips for this product
      }
      if (widgets) return widgets.strip(el, opts)
      waiting.push([el, opts])
      loadWidgets()
    },
    decision: () => current,
    // Called by attimo-widgets.js once it has loaded.
    _widgets(install) {
      if (widgets || typeof install !== 'function') return
      widgets = install({ track: api.track, flush, decision: () => current, cart: () => cart,
        renderers: handlers.popup, unacked, nonce })
      if (current) widgets.decide(current)
      for (const args of waiting.splice(0)) widgets.strip.apply(null, args)
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
  started = true
  read()
}

main()
