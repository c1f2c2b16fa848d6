// Draws one popup (modal, bar or slide-in) from its decision, as text nodes
// only, and reports what the visitor does with it: report('clicked') when
// the call to action is used, report('closed') when it is dismissed (close
// button, Escape, or a click on a modal's backdrop).
//
// Accessibility: role=dialog labelled by its title; a modal takes the focus
// (its close button), keeps Tab inside, and gives the focus back when it
// closes; a bar or slide-in does not steal the focus. Escape closes either.
import { el, safeUrl } from './dom.js'

const LAYOUTS = ['modal', 'bar', 'slide_in']
let count = 0

export function renderPopup(p, report) {
  const c = (p.content && typeof p.content === 'object' && p.content) || {}
  const layout = LAYOUTS.indexOf(p.layout) >= 0 ? p.layout : 'modal'
  const modal = layout === 'modal'
  const box = el('div', 'attimo-pop attimo-' + layout)
  const root = modal ? el('div', 'attimo-back') : box
  const title = el('h2', '', c.title || '')
  const close = el('button', 'attimo-close', '\u00d7')
  const before = document.activeElement

  title.id = 'attimo-title-' + ++count
  box.setAttribute('role', 'dialog')
  box.setAttribute('aria-labelledby', title.id)
  if (modal) box.setAttribute('aria-modal', 'true')
  close.type = 'button'
  close.setAttribute('aria-label', 'Close')
  box.appendChild(close)

  const img = safeUrl(c.image)
  if (img) {
    const i = el('img')
    i.alt = ''
    i.src = img
    box.appendChild(i)
  }
  box.appendChild(title)
  if (c.text) box.appendChild(el('p', '', c.text))
  if (c.coupon) {
    const code = el('p', 'attimo-coupon')
    code.appendChild(el('code', '', c.coupon))
    box.appendChild(code)
  }
  if (c.cta_label) {
    const href = safeUrl(c.cta_url)
    // Without a usable URL the call to action is a button that only closes the popup.
    const cta = el(href ? 'a' : 'button', 'attimo-cta', c.cta_label)
    if (href) cta.href = href
    else cta.type = 'button'
    cta.addEventListener('click', () => {
      report('clicked')
      if (!href) remove()
    })
    box.appendChild(cta)
  }

  function remove() {
    document.removeEventListener('keydown', onKey, true)
    if (root.parentNode) root.parentNode.removeChild(root)
    if (modal && before && before.focus) before.focus()
  }

  function dismiss() {
    report('closed')
    remove()
  }

  function onKey(e) {
    if (e.key === 'Escape') return dismiss()
    if (!modal || e.key !== 'Tab') return
    const f = box.querySelectorAll('a[href],button')
    const first = f[0]
    const last = f[f.length - 1]
    const at = document.activeElement
    if (!box.contains(at) || (e.shiftKey ? at === first : at === last)) {
      e.preventDefault()
      ;(e.shiftKey ? last : first).focus()
    }
  }

  close.addEventListener('click', dismiss)
  if (modal) {
    root.appendChild(box)
    root.addEventListener('click', (e) => e.target === root && dismiss())
  }
  document.addEventListener('keydown', onKey, true)
  document.body.appendChild(root)
  if (modal) close.focus()
  return { remove }
}
