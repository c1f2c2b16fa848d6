// First-party storage that never throws: localStorage is missing or throws in
// some privacy modes and when full, and the tracker must keep working anyway.
//
// `store.on` is the one switch for consent: while it is false nothing is read
// from or written to localStorage or cookies (callers keep their in-memory
// copies, exactly as when storage is unusable), so a page waiting for consent
// stores nothing.
export const store = { on: true }

// Returns the stored string, null when absent, undefined when storage is unusable
// (callers keep their in-memory copy in that case instead of forgetting it).
export function lsGet(key) {
  try {
    if (store.on) return localStorage.getItem(key)
  } catch (e) {}
}

// Returns false (or undefined) when the write failed (quota, disabled storage, no consent);
// callers then rely on their in-memory copy for this page.
export function lsSet(key, value) {
  try {
    if (!store.on) return false
    if (value == null) localStorage.removeItem(key)
    else localStorage.setItem(key, value)
    return true
  } catch (e) {}
}

// A cookie's value, or null. Never throws: a malformed value (a stray `%`
// written by another script) reads as absent instead of stopping the tracker.
export function getCookie(name) {
  try {
    const m = document.cookie.match('(?:^|; )' + name + '=([^;]*)')
    return m && decodeURIComponent(m[1])
  } catch (e) {
    return null
  }
}

// maxAgeSeconds 0 deletes the cookie.
export function setCookie(name, value, maxAgeSeconds) {
  if (!store.on) return
  document.cookie =
    name + '=' + encodeURIComponent(value) +
    '; max-age=' + maxAgeSeconds +
    '; path=/; SameSite=Lax' +
    (location.protocol === 'https:' ? '; Secure' : '')
}
