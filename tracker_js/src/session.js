// The visit: a session id on every event, a new one after 30 min without an
// event or 24 h after the visit began, and how the visit began — UTM
// parameters and an outside referrer of its first page (after a route change
// in a single-page app, the page's referrer is the previous URL) — sent with each of
// its events in Segment's `context.campaign` / `context.referrer` shapes.
// Kept in localStorage so tabs and pages of one visit share it (in memory
// only while storage is unusable or consent is pending).
import { uuid } from './ids.js'
import { lsGet, lsSet } from './storage.js'

export const SESSION = 'attimo_session'
// The page's referrer: the document's, then (single-page apps) the previous URL.
export const nav = { ref: document.referrer }
const IDLE = 18e5 // 30 min
const MAX = 864e5 // 24 h
let mem = null

function begin(now) {
  const s = { id: uuid(), start: now }
  const q = new URLSearchParams(location.search)
  // utm_X -> context.campaign.X (Segment calls utm_campaign "name").
  for (const k of ['campaign', 'source', 'medium', 'term', 'content']) {
    const v = q.get('utm_' + k)
    if (v) (s.campaign = s.campaign || {})[k == 'campaign' ? 'name' : k] = v
  }
  const r = nav.ref
  if (r && r.split('/')[2] !== location.host) s.referrer = { url: r }
  return s
}

// The current session, started or extended by an event at `now` (ms).
export function session(now) {
  let s = mem
  try {
    s = JSON.parse(lsGet(SESSION)) || mem
  } catch (e) {}
  if (!(s && now - s.last < IDLE && now - s.start < MAX)) s = begin(now)
  s.last = now
  lsSet(SESSION, JSON.stringify((mem = s)))
  return s
}

export function forgetSession() {
  mem = null
}
