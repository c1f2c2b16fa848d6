// Page views of single-page apps: a route change made with history.pushState
// / replaceState, or the back and forward buttons (popstate), is a page view
// of the new URL with the previous URL as its referrer. A change that keeps
// the URL (a replaceState of state only, the popups' back-gesture entry) is
// not one. Checked after the current task, so the app has set its new title.
// The previous URL becomes the page's referrer (`nav.ref`, which events read).
import { nav } from './session.js'

export function watchHistory(onPage) {
  const h = history
  let last = location.href
  function check() {
    setTimeout(() => {
      if (location.href !== last) (nav.ref = last), (last = location.href), onPage()
    })
  }
  for (const m of ['pushState', 'replaceState']) {
    const orig = h[m]
    h[m] = function () {
      check() // runs after this call (next task)
      return orig.apply(this, arguments)
    }
  }
  addEventListener('popstate', check)
}
