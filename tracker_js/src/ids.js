// Who the visitor is: an anonymous id that survives reloads and a userId once
// they identify. The anonymous id lives in a cookie AND localStorage so that
// clearing one of them (cookie expiry, storage eviction) does not split a
// visitor into two contacts; whichever survives restores the other.
import { lsGet, lsSet, getCookie, setCookie } from './storage.js'

const AID = 'attimo_aid'
const UID = 'attimo_uid'
const THIRTEEN_MONTHS = 396 * 86400

// A random (v4) uuid. Not crypto.randomUUID: it only exists in secure
// contexts, and a shop served over plain http still has getRandomValues.
export const uuid = () =>
  '10000000-1000-4000-8000-100000000000'.replace(/[018]/g, (d) =>
    (d ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (d / 4)))).toString(16))

export function anonymousId(reset) {
  const id = (!reset && (getCookie(AID) || lsGet(AID))) || uuid()
  // Re-write both every load: restores a lost copy and slides the cookie expiry.
  setCookie(AID, id, THIRTEEN_MONTHS)
  lsSet(AID, id)
  return id
}

// The user id and the site back end's signature of it (see decisions.js),
// kept together: saveIds() writes both (null removes), loadIds() reads them
// (a signature only with its user id).
const SIG = 'attimo_sig'

export function saveIds(who) {
  lsSet(UID, who.userId)
  lsSet(SIG, who.sig)
}

export function loadIds(who) {
  who.userId = lsGet(UID) || null
  who.sig = (who.userId && lsGet(SIG)) || null
}

// Consent withdrawn: every id and everything stored about the visitor goes.
// `keys` are the other stores' localStorage keys (queue, cart, session …).
export function forgetAll(keys) {
  setCookie(AID, '', 0)
  for (const k of [AID, UID, SIG, ...keys]) lsSet(k, null)
}
