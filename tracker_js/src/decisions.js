// Reads the visitor's current decisions (popups, product strips) from the
// API once per page; later changes arrive as pushed `decision` frames.
//
// A user id is only served with the signature the site's back end made for
// it (HMAC of the user id with the site's secret); without one the tracker
// reads by its anonymous id.
export const SIGNATURE_PARAM = 'signature'

export function readDecisions(api, writeKey, who) {
  const id = who.userId && who.signature ? who.userId : who.anonymousId
  let url = api + '/v1/decisions/' + encodeURIComponent(id) + '?key=' + encodeURIComponent(writeKey)
  if (who.signature) url += '&' + SIGNATURE_PARAM + '=' + encodeURIComponent(who.signature)
  // A simple GET (no custom header, no cookies): no CORS preflight on the hottest path.
  return fetch(url, { credentials: 'omit' })
    .then((r) => (r.ok ? r.json() : null))
    .catch(() => null)
}
