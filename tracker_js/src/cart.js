// The cart's value as this browser's own e-commerce events describe it
// (Segment spec names), for the "cart value over X" popup trigger: the page
// knows its cart before the dataflow does, and this needs no request.
// Cart Viewed / Checkout Started list the whole cart, so they correct any
// drift from adds and removes the page did not report.
function line(p) {
  return (+p.price || 0) * (p.quantity == null ? 1 : +p.quantity || 0)
}

export function cartAfter(value, name, p) {
  p = p || {}
  if (name === 'Product Added') return value + line(p)
  if (name === 'Product Removed') return Math.max(0, value - line(p))
  if (name === 'Order Completed') return 0
  if (name === 'Cart Viewed' || name === 'Checkout Started') {
    if (Array.isArray(p.products)) return p.products.reduce((s, x) => s + line(x || {}), 0)
    if (typeof p.value === 'number') return p.value
  }
  return value
}
