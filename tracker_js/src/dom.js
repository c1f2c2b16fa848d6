// The only ways widgets put anything on the page. Text from decisions (which
// come from configuration and event data) is set with textContent and so is
// never parsed as HTML; a URL is used only if it resolves to http(s). No
// widget code may use innerHTML, outerHTML, insertAdjacentHTML or
// document.write (a test greps the sources and the bundles for them).
import { CSS } from './styles.js'

export function el(tag, cls, text) {
  const e = document.createElement(tag)
  if (cls) e.className = cls
  if (text != null) e.textContent = String(text)
  return e
}

// An absolute http(s) URL, or null (javascript:, data:, blob: … and non-strings).
export function safeUrl(u) {
  if (typeof u !== 'string' || !u) return null
  try {
    const url = new URL(u, location.href)
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null
  } catch (e) {
    return null
  }
}

// The widgets' own stylesheet (a constant of this file, never data), once.
// It takes the tracker tag's CSP nonce so a strict style-src allows it.
export function injectStyle(nonce) {
  if (document.getElementById('attimo-style')) return
  const s = el('style', '', CSS)
  s.id = 'attimo-style'
  if (nonce) s.nonce = nonce
  document.head.appendChild(s)
}
