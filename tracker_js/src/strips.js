// Product strips: attimo('recommendations', element, {strip, limit, product,
// currency}) fills the element with cards (image, name, price, link) from
// the current decision's strip, and again whenever a new decision changes it.
// An empty strip falls back to `trending` (what a new visitor gets). The
// product on screen (`product`) is never recommended to itself. The element
// gets data-attimo-count (0 when there is nothing to show), for the site's CSS.
import { el, safeUrl } from './dom.js'

const STRIPS = ['cross_sell', 'up_sell', 'personal', 'trending']

function price(v, o) {
  if (o.currency) {
    try {
      return v.toLocaleString(o.locale, { style: 'currency', currency: o.currency })
    } catch (e) {
      // an unknown currency code: fall through to the plain number
    }
  }
  return v.toFixed(2)
}

export function createStrips(host) {
  let strips = []

  function cards(o) {
    const recs = (host.decision() || {}).recommendations || {}
    const ok = (list) => (Array.isArray(list) ? list : []).filter((p) => p && p.id != null && p.id !== o.product)
    let list = ok(recs[o.strip])
    if (!list.length) list = ok(recs.trending)
    return list.slice(0, o.limit)
  }

  function card(p, i, o) {
    const href = safeUrl(p.url)
    const a = el(href ? 'a' : 'div', 'attimo-card')
    const img = safeUrl(p.image)
    if (img) {
      const im = el('img')
      im.alt = ''
      im.loading = 'lazy'
      im.src = img
      a.appendChild(im)
    }
    a.appendChild(el('span', 'attimo-name', p.name == null ? '' : p.name))
    if (typeof p.price === 'number' && isFinite(p.price)) a.appendChild(el('span', 'attimo-price', price(p.price, o)))
    if (href) {
      a.href = href
      // Segment's Product Clicked, so a strip's clicks can be counted per strip.
      a.addEventListener('click', () =>
        host.track('Product Clicked', { product_id: String(p.id), name: String(p.name), price: p.price, position: i + 1, list_id: o.strip })
      )
    }
    return a
  }

  function render(s) {
    const list = cards(s.o)
    const key = JSON.stringify(list)
    if (key === s.key) return // unchanged: no flicker, no image reloads
    s.key = key
    const row = el('div', 'attimo-strip')
    list.forEach((p, i) => row.appendChild(card(p, i, s.o)))
    s.el.textContent = ''
    if (list.length) s.el.appendChild(row)
    s.el.setAttribute('data-attimo-count', String(list.length))
  }

  return {
    add(target, opts) {
      const e = typeof target === 'string' ? document.querySelector(target) : target
      if (!e || !e.appendChild) return console.warn('attimo: no element for recommendations', target)
      const o = Object.assign({}, opts)
      if (STRIPS.indexOf(o.strip) < 0) o.strip = 'personal'
      o.limit = o.limit > 0 ? Math.floor(o.limit) : 8
      o.product = o.product == null ? null : String(o.product)
      strips = strips.filter((s) => s.el !== e)
      const s = { el: e, o, key: null }
      strips.push(s)
      render(s)
    },
    update() {
      // Strips whose element left the page are forgotten.
      strips = strips.filter((s) => s.el.isConnected)
      strips.forEach(render)
    },
  }
}
