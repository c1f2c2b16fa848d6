// Who the visitor is: an anonymous id that survives reloads and a userId once
// they identify. The anonymous id lives in a cookie AND localStorage so that
// clearing one of them (cookie expiry, storage eviction) does not split a
// visitor into two contacts; whichever survives restores the other.
import { lsGet, lsSet, getCookie, setCookie } from './storage.js'

const AID = 'attimo_aid'
const UID = 'attimo_uid'
const THIRTEEN_MONTHS = 396 * 86400

export function uuid() {
  const c = window.crypto
  // randomUUID only exists in secure contexts; a shop served over plain http
  // still has getRandomValues.
  if (c && c.randomUUID) return c.randomUUID()
  const b = new Uint8Array(16)
  if (c && c.getRandomValues) c.getRandomValues(b)
  else for (let i = 0; i < 16; i++) b[i] = (Math.random() * 256) | 0
  b[6] = (b[6] & 15) | 64
  b[8] = (b[8] & 63) | 128
  let h = ''
  for (let i = 0; i < 16; i++) {
    h += (b[i] + 256).toString(16).slice(1)
    if (i === 3 || i === 5 || i === 7 || i === 9) h += '-'
  }
  return h
}

export function anonymousId(reset) {
  let id = reset ? null : getCookie(AID) || lsGet(AID)
  if (!id) id = uuid()
  // Re-write both every load: restores a lost copy and slides the cookie expiry.
  setCookie(AID, id, THIRTEEN_MONTHS)
  lsSet(AID, id)
  return id
}

export function loadUserId() {
  return lsGet(UID) || null
}

export function saveUserId(id) {
  lsSet(UID, id == null ? null : String(id))
}

// The site back end's signature of the user id (see decisions.js); kept with it.
const SIG = 'attimo_sig'

export function loadSignature() {
  return (loadUserId() && lsGet(SIG)) || null
}

export function saveSignature(sig) {
  lsSet(SIG, sig == null ? null : String(sig))
}
