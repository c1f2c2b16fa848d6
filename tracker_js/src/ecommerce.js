// Helpers for the Segment e-commerce spec's events, with its property names:
//   attimo('productViewed', product)     Product Viewed
//   attimo('productAdded', product)      Product Added
//   attimo('productRemoved', product)    Product Removed
//   attimo('cartViewed', cart)           Cart Viewed       cart: {cart_id, products} or [products]
//   attimo('checkoutStarted', order)     Checkout Started  order: {order_id, value, revenue, currency, products …}
//   attimo('orderCompleted', order)      Order Completed
// A product is {product_id, sku, name, brand, category, variant, price,
// quantity, coupon, position, url, image_url}; `id` is taken as product_id.
// The helpers' names; each event's name is its helper's, spelled out: productViewed -> Product Viewed.
export const ECOM = 'productViewed productAdded productRemoved cartViewed checkoutStarted orderCompleted'.split(' ')
export const ecomName = (k) => k[0].toUpperCase() + k.slice(1).replace(/[A-Z]/, ' $&')

// `id` is a product's product_id only (an order's id is its own business).
function fix(p, isProduct) {
  p = Object.assign({}, p)
  if (isProduct && p.product_id == null) p.product_id = p.id
  if (Array.isArray(p.products)) p.products = p.products.map((x) => fix(x, 1))
  return p
}

// `k` is the helper's name. cartViewed([...]) is cartViewed({products: [...]}).
export const ecomProps = (k, p) => fix(Array.isArray(p) ? { products: p } : p, /^product/.test(k))
