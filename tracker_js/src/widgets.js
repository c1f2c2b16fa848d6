// attimo-widgets.js: popups and product strips. The tracker (index.js) loads
// this file only when a decision has popups or the page asks for a strip,
// and hands it what it needs through `install(host)`:
//   host.decision()  the current decision      host.cart()  the cart value seen
//   host.track(name, props), host.flush()       host.renderers  attimo('on', 'popup') functions
//   host.unacked  popup events still queued when the page started   host.nonce  CSP nonce
import { injectStyle } from './dom.js'
import { createPopups } from './popups.js'
import { createStrips } from './strips.js'

function install(host) {
  injectStyle(host.nonce)
  const popups = createPopups(host)
  const strips = createStrips(host)
  return {
    decide(d) {
      popups.decide(d)
      strips.update()
    },
    strip: strips.add,
    popup: popups.report,
    page: popups.page,
  }
}

const w = window
// Loaded before the tracker (e.g. from a bundle)? The snippet's stub queues the call.
w.attimo = w.attimo || function () { (w.attimo.q = w.attimo.q || []).push(arguments) }
w.attimo('_widgets', install)
