// Page views of single-page apps: a route change made with history.pushState
// / replaceState, or the back and forward buttons (popstate), is a page view
// of the new URL with the previous URL as its referrer. A change that keeps
// the URL (a replaceState of state only, the popups' back-gesture entry) is
// not one. Checked after the current task, so the app has set its new title.
export function watchHistory(onPage) {
  const h = history
  let last = location.href
  function check() {
    setTimeout(() => {
      if (location.href !== last) onPage(last, (last = location.href))
    })
  }
  for (const m of ['pushState', 'replaceState']) {
    const orig = h[m]
    h[m] = function () {
      const r = orig.apply(this, arguments)
      check()
      return r
    }
  }
  addEventListener('popstate', check)
}
