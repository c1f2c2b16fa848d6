// Which popup appears on this page view, and when. The decision lists the
// popups the visitor may see now (targeting, frequency and variant were
// decided server-side); this measures the page (time, scroll depth, exit
// intent, inactivity, cart value, URL) and shows at most one per page view:
// the highest priority popup whose trigger fired. A new decision replaces the
// eligible set, so a popup can appear mid-page after a push.
//
// With attimo('on', 'popup', fn) registered, the chosen popup goes to the
// site's functions instead of being drawn; the site reports back with
// attimo('popup', 'shown' | 'clicked' | 'closed', popup).
import { choose } from './triggers.js'
import { renderPopup } from './popup_view.js'
import { lsGet, lsSet } from './storage.js'

const EVENTS = { shown: 'Popup Shown', clicked: 'Popup Clicked', closed: 'Popup Closed' }
const RECENT = 'attimo_popups'
const RECENT_MS = 2000 // how long the dataflow may take to count a popup event (it takes ~0.05 s)
const TICK_MS = 250 // how often time-based triggers are checked while a popup is eligible
const FAST_UP_MS = 500 // a third of the screen scrolled up within this is a mobile exit intent

export function createPopups(host) {
  const w = window
  const now = () => performance.now()
  const coarse = !!(w.matchMedia && w.matchMedia('(pointer: coarse)').matches)
  let eligible = []
  let shown = false
  let start = 0 // the first page view started with the navigation
  let active = now()
  let depth = 0
  let timer = 0
  let lastY = w.scrollY
  let lastT = now()
  let upY = null
  let upT = 0
  let armed = false
  let sent = new Set()
  // Campaigns this page view does not show because the decisions may not know
  // yet what the visitor did with them on an earlier page (caps are decided
  // server-side, from the popup events): those with popup events still unacked
  // when the page started, and those reported in the last RECENT_MS (acked,
  // but perhaps not yet counted by the dataflow when this page read).
  let recent = []
  try {
    recent = JSON.parse(lsGet(RECENT) || '[]').filter((r) => Date.now() - r[1] < RECENT_MS)
  } catch (e) {
    // unreadable: nothing recent
  }
  const held = new Set(
    host.unacked.map((e) => e.properties && e.properties.campaign).concat(recent.map((r) => r[0]))
  )

  // Popup Shown / Clicked / Closed with the popup's campaign and variant, each once per page view.
  function report(action, p) {
    const name = EVENTS[action]
    if (!name || !p || !p.campaign) return console.warn('attimo: popup', action, p)
    const props = { campaign: String(p.campaign), variant: String(p.variant) }
    const k = name + JSON.stringify(props)
    if (sent.has(k)) return
    sent.add(k)
    host.track(name, props)
    recent = recent.filter((r) => r[0] !== props.campaign && Date.now() - r[1] < RECENT_MS)
    recent.push([props.campaign, Date.now()])
    lsSet(RECENT, JSON.stringify(recent))
    if (action !== 'shown') host.flush() // a click usually navigates away
  }

  // How far down the page is scrolled, in percent. A page too short to scroll is at 0: a
  // scroll trigger means the visitor read on, and `arrival` is there for "at once".
  function scrolled() {
    const h = document.documentElement.scrollHeight - w.innerHeight
    return h > 0 ? Math.min(100, (w.scrollY / h) * 100) : 0
  }

  function check(exit) {
    if (shown || !eligible.length) return stop()
    const s = {
      elapsed: (now() - start) / 1000,
      scroll: depth,
      exit: exit === true,
      idle: (now() - active) / 1000,
      cart: host.cart(),
      url: location.href,
    }
    const p = choose(eligible, s, held)
    if (!p) return false
    shown = true
    stop()
    show(p)
    return true
  }

  function show(p) {
    if (host.renderers.length) {
      for (const fn of host.renderers) {
        try {
          fn(p)
        } catch (e) {
          console.error(e)
        }
      }
      return
    }
    renderPopup(p, (action) => report(action, p))
    report('shown', p)
  }

  function stop() {
    clearInterval(timer)
    timer = 0
  }

  function onActive() {
    active = now()
  }

  function onScroll() {
    const y = w.scrollY
    const t = now()
    depth = Math.max(depth, scrolled())
    onActive()
    // Mobile exit intent: a fast scroll back up (towards the address bar).
    if (y < lastY) {
      if (upY == null || t - upT > FAST_UP_MS) {
        upY = lastY
        upT = lastT
      }
      if (coarse && upY - y > w.innerHeight / 3 && check(true)) return
    } else upY = null
    lastY = y
    lastT = t
    check()
  }

  // Mobile exit intent: the back gesture. After the visitor's first tap (a
  // history entry added without one is skipped by Chrome's back button) one
  // entry for the same URL is added; going back to the real entry is the
  // exit intent. If no popup takes it, the visitor is sent on back. Entries
  // the tracker adds carry history.state.attimo, for SPA navigation tracking
  // to ignore.
  function arm() {
    if (armed || shown || !coarse || !eligible.some((p) => (p.triggers || []).some((t) => t && t.kind === 'exit_intent'))) return
    armed = true
    history.pushState({ attimo: 'exit' }, '', location.href)
  }

  function onPop() {
    if (!armed || (history.state && history.state.attimo)) return
    armed = false
    if (!check(true)) history.back()
  }

  w.addEventListener('scroll', onScroll, { passive: true })
  for (const e of ['pointermove', 'pointerdown', 'keydown', 'touchstart', 'wheel']) {
    w.addEventListener(e, onActive, { passive: true, capture: true })
  }
  // Desktop exit intent: the pointer leaves the page through the top edge.
  document.addEventListener('mouseout', (e) => !e.relatedTarget && e.clientY <= 0 && check(true))
  w.addEventListener('pointerup', arm, { passive: true })
  w.addEventListener('popstate', onPop)

  return {
    decide(d) {
      eligible = (Array.isArray(d.popups) ? d.popups : []).filter((p) => p && typeof p === 'object')
      depth = Math.max(depth, scrolled())
      if (!check() && eligible.length && !shown && !timer) timer = setInterval(check, TICK_MS)
    },
    report,
    page() {
      shown = false
      sent = new Set()
      start = now()
      depth = scrolled()
      if (!check() && eligible.length && !timer) timer = setInterval(check, TICK_MS)
    },
  }
}
