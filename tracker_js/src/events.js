// Builds Segment Spec events, so that the same server accepts both this
// tracker and stock Segment / RudderStack clients.
import { uuid } from './ids.js'
import { session, nav } from './session.js'

export const VERSION = '1.1.0'

export { nav }

function pageInfo() {
  return {
    url: location.href,
    path: location.pathname,
    title: document.title,
    referrer: nav.ref,
    search: location.search,
  }
}

export function buildEvent(type, who, fields) {
  const s = session(Date.now())
  const ev = {
    type,
    messageId: uuid(),
    anonymousId: who.anonymousId,
    timestamp: new Date().toISOString(),
    context: {
      page: pageInfo(),
      userAgent: navigator.userAgent,
      locale: navigator.language,
      library: { name: 'attimo.js', version: VERSION },
      sessionId: s.id,
    },
  }
  if (s.campaign) ev.context.campaign = s.campaign
  if (s.referrer) ev.context.referrer = s.referrer
  if (who.userId) ev.userId = who.userId
  // The user id's signature proves the claim to the ingest (docs/protocol.md 13.3), which strips it.
  if (who.signature) ev.context.userHash = who.signature
  return Object.assign(ev, fields)
}

export function track(who, name, props) {
  return buildEvent('track', who, { event: String(name), properties: props || {} })
}

// page(props?) or page(name, props?): Segment's page properties always carry
// the url fields so that server-side rules can match on them directly.
export function page(who, name, props) {
  if (name && typeof name === 'object') {
    props = name
    name = null
  }
  const fields = { properties: Object.assign(pageInfo(), props) }
  if (name) fields.name = String(name)
  return buildEvent('page', who, fields)
}

export function identify(who, traits) {
  return buildEvent('identify', who, { traits: traits || {} })
}
