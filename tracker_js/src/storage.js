// First-party storage that never throws: localStorage is missing or throws in
// some privacy modes and when full, and the tracker must keep working anyway.

// Returns the stored string, null when absent, undefined when storage is unusable
// (callers keep their in-memory copy in that case instead of forgetting it).
export function lsGet(key) {
  try {
    return localStorage.getItem(key)
  } catch (e) {
    return undefined
  }
}

// Returns false when the write failed (quota, disabled storage); callers then
// rely on their in-memory copy for this page.
export function lsSet(key, value) {
  try {
    if (value == null) localStorage.removeItem(key)
    else localStorage.setItem(key, value)
    return true
  } catch (e) {
    return false
  }
}

export function getCookie(name) {
  const m = document.cookie.match('(?:^|; )' + name + '=([^;]*)')
  return m ? decodeURIComponent(m[1]) : null
}

export function setCookie(name, value, maxAgeSeconds) {
  document.cookie =
    name + '=' + encodeURIComponent(value) +
    '; max-age=' + maxAgeSeconds +
    '; path=/; SameSite=Lax' +
    (location.protocol === 'https:' ? '; Secure' : '')
}
