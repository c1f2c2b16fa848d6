// The cart's value as this browser's own e-commerce events describe it
// (Segment spec names), for the "cart value over X" popup trigger: the page
// knows its cart before the dataflow does, and this needs no request.
// Cart Viewed / Checkout Started list the whole cart, so they correct any
// drift from adds and removes the page did not report.
const line = (p) => (+p.price || 0) * (p.quantity == null ? 1 : +p.quantity || 0)

export function cartAfter(value, name, p) {
  p = p || {}
  const list = p.products
  return name == 'Product Added' ? value + line(p)
    : name == 'Product Removed' ? Math.max(0, value - line(p))
    : name == 'Order Completed' ? 0
    : !/^(Cart Viewed|Checkout Started)$/.test(name) ? value
    : Array.isArray(list) ? list.reduce((s, x) => s + line(x || {}), 0)
    : typeof p.value == 'number' ? p.value
    : value
}
