// When a popup may appear on this page view. `fired` and `choose` are pure
// functions of what the page measured (popups.js), so they are unit-tested
// without a browser. A trigger kind this tracker does not know never fires.
export function fired(t, s) {
  switch (t && t.kind) {
    case 'arrival':
      return true
    case 'after':
      return s.elapsed >= t.seconds
    case 'scroll':
      return s.scroll >= t.percent
    case 'exit_intent':
      return s.exit
    case 'inactive':
      return s.idle >= t.seconds
    case 'cart_value':
      return s.cart > t.amount
    case 'url':
      return typeof t.contains === 'string' && s.url.indexOf(t.contains) >= 0
  }
  return false
}

// The popup to show now: among those not held back, the highest priority one
// any of whose triggers fired (the first listed wins a tie), or null.
export function choose(popups, s, held) {
  let best = null
  for (const p of popups) {
    if (held.has(p.campaign) || !Array.isArray(p.triggers)) continue
    if (best && (+p.priority || 0) <= (+best.priority || 0)) continue
    if (p.triggers.some((t) => fired(t, s))) best = p
  }
  return best
}
