import { warn } from './util.js'

// Reads the visitor's current decisions (popups, product strips) from the
// API; later changes arrive as pushed `decision` frames.
//
// A signed-in user's decisions are only served with the signature the site's
// back end made for the user id (hex HMAC-SHA256 with the site's identity
// secret), whichever of the contact's ids is asked for: it goes as `sig`
// here and, with `uid`, on the websocket handshake (which then receives the
// user's pushes). `product` is the product on screen: cross-sell and up-sell
// are composed for it.
// `who.sig` is only ever set with `who.userId` (index.js, ids.js).
export function readDecisions(api, writeKey, who, product) {
  const id = who.sig ? who.userId : who.anonymousId
  let url = api + '/v1/decisions/' + encodeURIComponent(id) + '?key=' + encodeURIComponent(writeKey)
  if (who.sig) url += '&sig=' + encodeURIComponent(who.sig)
  if (product) url += '&product=' + encodeURIComponent(product)
  // A simple GET (no custom header, no cookies): no CORS preflight on the hottest path.
  return fetch(url, { credentials: 'omit' })
    .then((r) => {
      if (r.ok) return r.json()
      // 401 / 403: a signed-in user without a valid signature (or a refused key).
      if (r.status === 401 || r.status === 403) warn('decisions refused', r.status)
    })
    .catch(() => null)
}

// The handshake's proof of identity (empty unless the user id is signed).
export function proof(who) {
  return who.sig
    ? '&uid=' + encodeURIComponent(who.userId) + '&sig=' + encodeURIComponent(who.sig)
    : ''
}
