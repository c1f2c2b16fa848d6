// Public API and wiring: reads the <script> tag's settings, replays calls the
// snippet queued before this file loaded, moves events from the persistent
// queue to the gateway (or, while websockets fail, to the HTTP API), and
// keeps the visitor's current decisions.
//
// Popups and product strips live in a second file (attimo-widgets.js),
// loaded only on pages that have a popup to consider or a strip to render,
// so that every other page view pays for the tracker alone.
import { anonymousId, saveIds, loadIds, forgetAll } from './ids.js'
import { createQueue } from './queue.js'
import { createTransport } from './transport.js'
import * as build from './events.js'
import { readDecisions, proof } from './decisions.js'
import { cartAfter } from './cart.js'
import { lsGet, lsSet, store } from './storage.js'
import { SESSION, forgetSession } from './session.js'
import { postBatch } from './http.js'
import { blocked } from './privacy.js'
import { watchHistory } from './spa.js'
import { watchForms } from './forms.js'
import { bucket } from './limit.js'
import { ECOM, ecomName, ecomProps } from './ecommerce.js'
import { backoff } from './retry.js'
import { warn } from './util.js'

const MAX_BATCH = 100
const MAX_FRAMES_IN_FLIGHT = 4 // so a lagging gateway's withheld acks slow us down
// Bytes per frame or HTTP body: far under the gateway's 512 KB frame limit and
// under the browser's 64 KB cap on keepalive requests.
const MAX_BYTES = 48e3
// The ingest refuses an event over 32 KB: such an event is never queued.
const MAX_EVENT = 32e3
const QUEUE_CAP = 1000
const Q = 'attimo_q'
const CART = 'attimo_cart'

const bytes = (v) => new Blob([JSON.stringify(v)]).size

// data-widgets, else next to this file: /tracker.js -> /tracker-widgets.js, /attimo.js -> /attimo-widgets.js.
const widgetsUrl = (tag, cfg) => cfg.widgets || (tag.src && tag.src.replace(/(\.min)?\.js([?#].*)?$/, '-widgets.js'))

function main() {
  const w = window
  const stub = w.attimo
  if (stub && stub.loaded) return // the script was included twice

  const tag = document.currentScript || document.querySelector('script[data-key]') || {}
  const cfg = tag.dataset || {}
  const writeKey = cfg.key || ''
  const base = (k) => (cfg[k] || '').replace(/\/$/, '')
  const gateway = base('gateway')
  const flushMs = +cfg.flushMs || 200
  const baseMs = +cfg.retryBaseMs // NaN: backoff()'s default (500)
  const apiBase = base('api')
  const nonce = tag.nonce || ''
  // Failed websocket connects in a row before batches go over HTTP (at once without a gateway).
  const tries = gateway ? 3 : 0

  // Not tracked at all: opt-out cookie, DNT / GPC (when respected), bots (unless allowed).
  const off = blocked(cfg)
  // Consent: until given, nothing is stored and nothing is sent.
  let consent = !off && cfg.consent !== 'required'
  // Whether events tracked while consent is pending are kept (false once withdrawn).
  let keep = !off && cfg.consentQueue !== 'drop'
  const held = [] // events tracked while consent is pending (data-consent-queue="keep")
  store.on = consent

  let who = {} // anonymousId, userId, sig (its signature): known once storage is allowed
  let queue = createQueue(Q, QUEUE_CAP)
  const handlers = { decision: [], popup: [] }
  const allow = bucket(+cfg.rate || 10, +cfg.burst || 100) // events per second, burst
  let dropped = 0 // by the rate limit, on this page
  let unreported = 0 // …not yet told to the server (context.dropped of the next event)
  // Popup events still unacked when this page started (popups.js holds back their campaigns).
  let unacked = []
  let cart = 0
  let current = null // the visitor's decisions as last read or pushed
  let pushes = 0
  let product // the product on screen, when a strip names one
  let started
  let widgets
  let widgetsAsked
  const waiting = [] // strips asked for before the widgets file loaded
  // seq -> batch sent on the current connection and not yet acked
  let inflight = new Map()
  let sentIds = new Set()
  let posted = new Set() // batches posted over HTTP and not answered yet
  let leaving
  let httpAt = 0 // no HTTP post before this time (backoff after a failed one)
  let httpFails = 0
  let flushTimer = 0
  let keyRefused

  function mark(batch, on) {
    for (const e of batch) on ? sentIds.add(e.messageId) : sentIds.delete(e.messageId)
  }

  // The next batch: at most MAX_BATCH events and MAX_BYTES (at least one event).
  function take(pending) {
    let n = 0
    let i = 0
    for (; i < pending.length && i < MAX_BATCH; i++) if ((n += bytes(pending[i]) + 1) > MAX_BYTES && i) break
    return pending.splice(0, i)
  }

  function flush() {
    clearTimeout(flushTimer)
    flushTimer = 0
    if (!consent) return
    const pending = queue.all().filter((e) => !sentIds.has(e.messageId))
    if (transport.isOpen()) {
      // Not while the gateway's rate limit says to wait (a timer flushes then).
      while (pending.length && inflight.size < MAX_FRAMES_IN_FLIGHT && Date.now() >= transport.until()) {
        const batch = take(pending)
        inflight.set(transport.send(batch), batch)
        mark(batch, 1)
      }
    } else if (apiBase && !keyRefused && (leaving || transport.fails() >= tries && Date.now() >= httpAt)) {
      // One post at a time, and one more when the page is going away (a
      // keepalive post outlives it; what is left stays queued for the next page).
      if (pending.length && (leaving || !posted.size)) post(take(pending))
    }
  }

  function post(batch) {
    posted.add(batch)
    mark(batch, 1)
    postBatch(apiBase, writeKey, batch).then((r) => {
      if (!posted.delete(batch)) return // consent withdrawn meanwhile
      mark(batch, 0)
      if (r.retry) {
        const wait = backoff(httpFails++, baseMs)
        httpAt = Date.now() + wait
        setTimeout(flush, wait)
      } else if (r.refused) refused('API (' + r.refused + ')')
      else (httpFails = 0), done(batch, r)
    })
  }

  function enqueue(ev) {
    if (!consent && !keep) return
    if (!allow()) {
      dropped++
      unreported++
      return
    }
    ev.context.dropped = unreported || undefined
    unreported = 0
    if (bytes(ev) > MAX_EVENT) return warn('event too large', ev.event || ev.type)
    if (!consent) return held.push(ev)
    queue.push(ev)
    if (!flushTimer) flushTimer = setTimeout(flush, flushMs)
  }

  // An answered batch leaves the queue. Rejected events are invalid, not
  // unlucky: resending would fail again. {"error": ...} refuses the whole batch
  // (too big, malformed): like a rejected event it is dropped, not resent.
  function done(batch, msg) {
    if (msg.error) warn('frame rejected', msg.error)
    for (const r of msg.rejected || []) {
      const e = batch[r.index]
      warn('event rejected', e && (e.event || e.type), r.error)
    }
    const ids = new Set(batch.map((e) => e.messageId))
    queue.remove(ids)
    mark(batch, 0)
    flush()
  }

  // {"ack": n, "rejected": [...]} or {"ack": n, "error": ...} (the whole frame refused).
  function onAck(msg) {
    const batch = inflight.get(msg.ack)
    if (batch) inflight.delete(msg.ack), done(batch, msg)
  }

  // The key (or the page's origin) is refused for good (`why`: by whom, the
  // code). Events stay queued in localStorage (capped): once the key is fixed
  // they go out on the visitor's next page.
  function refused(why) {
    keyRefused = true
    console.error('attimo: write key ' + JSON.stringify(writeKey) + ' refused by the ' + why + '; not retrying')
  }

  function loadWidgets() {
    const src = widgetsUrl(tag, cfg)
    if (widgetsAsked || !src) return
    widgetsAsked = true
    const s = document.createElement('script')
    s.src = src
    s.nonce = nonce
    document.head.append(s)
  }

  // `pushed`: what to use if the read fails.
  function read(pushed) {
    const before = pushes
    // A push that arrived while this read was in flight is newer than its answer.
    if (apiBase && cfg.decisions !== 'false') {
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
    else if ((d.popups || [])[0]) loadWidgets()
    for (const fn of handlers.decision) {
      try {
        fn(d)
      } catch (e) {
        console.error(e)
      }
    }
    dispatchEvent(new CustomEvent('attimo:decision', { detail: d }))
  }

  const transport = createTransport(
    () => gateway + '/v1/stream?key=' + encodeURIComponent(writeKey) + proof(who),
    {
      open: flush,
      ack: onAck,
      // {"limited": seq, "retryAfter": s}: the frame was not stored. Its events
      // stay queued and go out again once the wait is over (not before, or
      // they would only be refused again).
      limited(seq, until) {
        const batch = inflight.get(seq)
        if (batch) inflight.delete(seq), mark(batch, 0), setTimeout(flush, until - Date.now())
      },
      decision: onPush,
      // Unacked frames are forgotten; their events are still in the queue and
      // go out again (same messageIds) on the next connection — or over HTTP
      // once connects keep failing.
      close() {
        inflight = new Map()
        sentIds = new Set()
        for (const b of posted) mark(b, 1)
        flush()
      },
      refused: (code, reason) => refused('gateway (' + (reason ? code + ' ' + reason : code) + ')'),
    },
    baseMs
  )

  // Storage allowed from here on: the ids are read (or made) and stored, and
  // what was tracked while waiting joins the queue.
  function grant() {
    who.anonymousId = anonymousId()
    who.userId ? saveIds(who) : loadIds(who)
    cart = +lsGet(CART) || 0
    unacked = queue.all().filter((e) => /^Popup /.test(e.event))
    for (const e of held.splice(0)) (e.anonymousId = who.anonymousId), queue.push(e)
  }

  // …and sending: the socket, the decisions read, the first flush.
  function go() {
    if (tries) transport.connect()
    started = true
    read()
    flushTimer = setTimeout(flush, flushMs)
  }

  // Leaving (or hidden, maybe for good): what the socket has not taken goes
  // out as keepalive posts, which the browser finishes after the page is gone.
  // They stay queued until answered; a resend is deduped by messageId.
  function onLeave(ev) {
    if (consent && (ev.type == 'pagehide' || document.visibilityState == 'hidden'))
      (leaving = true), queue.persist(), flush(), (leaving = false)
  }

  const api = {
    track(name, props) {
      const v = cartAfter(cart, name, props)
      if (v !== cart) lsSet(CART, (cart = v)) // stored as its string
      enqueue(build.track(who, name, props))
    },
    page(name, props) {
      if (widgets) widgets.page() // a new page view may show a popup again
      enqueue(build.page(who, name, props))
    },
    // identify(userId, traits?, {userHash}?) or identify(traits, {userHash}?); `signature` is its older name.
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
        who.sig = null // a signature is only valid for the id it signed
      }
      const sig = opts && (opts.userHash || opts.signature)
      if (sig && who.userId) who.sig = String(sig)
      saveIds(who)
      enqueue(build.identify(who, traits))
      // A socket is verified for one user at its handshake: prove the new identity.
      if (proof(who) !== had) transport.reconnect()
    },
    reset() {
      if (proof(who)) transport.reconnect()
      who.anonymousId = anonymousId(true)
      who.userId = who.sig = null
      saveIds(who)
      lsSet(CART, null)
      cart = 0
    },
    // attimo('consent', true): store and send from now on (with what was held);
    // attimo('consent', false): stop, close the socket, forget the ids and
    // everything stored, and drop what is tracked until consent is given again.
    consent(yes) {
      if (off || !yes === !consent) return
      if (yes) return (consent = store.on = true), grant(), go()
      forgetAll([Q, CART, SESSION, 'attimo_popups']) // while storage is still on
      consent = store.on = keep = false
      transport.stop()
      posted = new Set()
      held.length = 0
      queue = createQueue(Q, QUEUE_CAP) // empty, in memory while storage is off
      forgetSession()
      who = {}
      cart = 0
    },
    // What the tracker is doing: for a site's own checks and the tests.
    stats: () => ({
      blocked: off,
      consent,
      websocket: transport.isOpen(),
      queued: queue.all().length + held.length,
      dropped,
    }),
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
      for (const args of waiting.splice(0)) widgets.strip(...args)
    },
    flush,
    anonymousId: () => who.anonymousId,
    userId: () => who.userId,
  }
  for (const k of ECOM) api[k] = (p) => api.track(ecomName(k), ecomProps(k, p))

  function attimo(method, ...args) {
    const fn = api[method]
    return fn ? fn(...args) : warn('unknown method', method)
  }
  attimo.loaded = true
  attimo.version = build.VERSION
  w.attimo = attimo

  if (off) return
  if (consent) grant()
  if (cfg.autoPage !== 'false') api.page()
  for (const args of (stub && stub.q) || []) attimo(...args)
  if (consent && !started) go()

  if (cfg.spa !== 'false')
    watchHistory(() => api.page())
  watchForms(api.track)
  addEventListener('pagehide', onLeave)
  document.addEventListener('visibilitychange', onLeave)
  addEventListener('online', () => {
    httpAt = 0
    transport.now()
    flush()
  })
}

main()
