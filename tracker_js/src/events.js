// Builds Segment Spec events, so that the same server accepts both this
// tracker and stock Segment / RudderStack clients.
import { uuid } from './ids.js'
import { iso } from './util.js'
import { session, nav } from './session.js'

export const VERSION = '1.1.0'

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
  // Absent fields are left undefined: JSON leaves them out.
  return Object.assign({
    type,
    messageId: uuid(),
    anonymousId: who.anonymousId,
    userId: who.userId || undefined,
    timestamp: iso(),
    context: {
      page: pageInfo(),
      userAgent: navigator.userAgent,
      locale: navigator.language,
      library: { name: 'attimo.js', version: VERSION },
      sessionId: s.id,
      campaign: s.campaign,
      referrer: s.referrer,
      // The user id's signature proves the claim to the ingest (docs/protocol.md 13.3), which strips it.
      userHash: who.sig || undefined,
    },
  }, fields)
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
  return buildEvent('page', who, { name: name ? String(name) : undefined, properties: Object.assign(pageInfo(), props) })
}

export function identify(who, traits) {
  return buildEvent('identify', who, { traits: traits || {} })
}
