// The demo shop's behaviour: a localStorage cart and the Segment e-commerce
// events each page sends through the Attimo snippet. Calls made here before
// the tracker has loaded are queued by the snippet and replayed in order.
(function () {
  var data = JSON.parse(document.getElementById('page-data').textContent);
  var CART = 'demo_cart';

  function uuid() {
    return window.crypto && crypto.randomUUID ? crypto.randomUUID()
      : 'x' + Date.now().toString(36) + Math.random().toString(36).slice(2);
  }
  function cart() {
    var c = null;
    try { c = JSON.parse(localStorage.getItem(CART)); } catch (e) { c = null; }
    return c && c.lines ? c : { cart_id: uuid(), lines: [] };
  }
  function save(c) {
    localStorage.setItem(CART, JSON.stringify(c));
    showCount(c);
  }
  function showCount(c) {
    var n = c.lines.reduce(function (s, l) { return s + l.quantity; }, 0);
    document.getElementById('cart-count').textContent = n;
  }
  function total(c) {
    return Math.round(c.lines.reduce(function (s, l) { return s + l.price * l.quantity; }, 0) * 100) / 100;
  }
  function show(id, on) { var el = document.getElementById(id); if (el) el.hidden = !on; }

  // The tracker reads the visitor's decisions on load and passes every newer
  // one (pushed when they change) to this handler; popups and strips it draws itself.
  attimo('on', 'decision', function (d) {
    document.getElementById('attimo-decision').textContent = JSON.stringify(d, null, 2);
  });
  function strip(id, name, productId) {
    if (!document.getElementById(id)) return;
    attimo('recommendations', '#' + id, {
      strip: name, limit: 4, product: productId, currency: 'EUR', locale: 'it-IT'
    });
  }
  // Product links and images in the events let Attimo learn the catalog's cards
  // even before (or without) a catalog upload through the admin API.
  function withLinks(p) {
    return Object.assign({}, p, {
      url: location.origin + '/product/' + encodeURIComponent(p.product_id),
      image_url: location.origin + '/product-image/' + encodeURIComponent(p.product_id) + '.svg'
    });
  }
  showCount(cart());

  var pages = {
    home: function () {
      strip('recs-personal', 'personal');
    },
    search: function () {
      attimo('track', 'Products Searched', { query: data.query });
    },
    category: function () {
      attimo('track', 'Product List Viewed', {
        list_id: data.category.slug, category: data.category.name, products: data.products
      });
    },
    product: function () {
      var p = withLinks(data.product);
      attimo('track', 'Product Viewed', p);
      strip('recs-cross', 'cross_sell', p.product_id);
      strip('recs-up', 'up_sell', p.product_id);
      document.getElementById('add-to-cart').addEventListener('click', function () {
        var c = cart();
        var line = c.lines.filter(function (l) { return l.product_id === p.product_id; })[0];
        if (line) line.quantity += 1;
        else c.lines.push(Object.assign({ quantity: 1 }, p));
        save(c);
        attimo('track', 'Product Added', Object.assign({}, p, { quantity: 1, cart_id: c.cart_id }));
        show('added', true);
      });
    },
    cart: function () {
      var c = cart();
      attimo('track', 'Cart Viewed', { cart_id: c.cart_id, products: c.lines });
      renderCart();
      strip('recs-cross', 'cross_sell');
      document.getElementById('checkout').addEventListener('click', function () {
        location.href = '/checkout';
      });
    },
    checkout: function () {
      var c = cart();
      document.getElementById('cart-total').textContent = total(c).toFixed(2);
      show('cart-empty', !c.lines.length);
      if (c.lines.length) {
        attimo('track', 'Checkout Started', {
          cart_id: c.cart_id, value: total(c), revenue: total(c), currency: 'EUR', products: c.lines
        });
      }
      document.getElementById('checkout-form').addEventListener('submit', function (ev) {
        ev.preventDefault();
        var c = cart();
        if (!c.lines.length) return show('cart-empty', true);
        var form = new FormData(ev.target);
        var orderId = 'o-' + uuid().slice(0, 8);
        attimo('identify', form.get('email'), { email: form.get('email'), name: form.get('name') });
        attimo('track', 'Order Completed', {
          order_id: orderId, cart_id: c.cart_id, total: total(c), revenue: total(c),
          currency: 'EUR', products: c.lines
        });
        attimo('flush');
        localStorage.removeItem(CART);
        showCount(cart());
        document.getElementById('order-id').textContent = orderId;
        ev.target.hidden = true;
        show('order-confirmation', true);
      });
    },
    signup: function () {
      document.getElementById('signup-form').addEventListener('submit', function (ev) {
        ev.preventDefault();
        var f = new FormData(ev.target);
        var traits = {
          email: f.get('email'), name: f.get('name'), province: f.get('province'),
          age_band: f.get('age_band'), interest: f.get('interest')
        };
        attimo('identify', traits.email, traits);
        attimo('track', 'Signed Up', { method: 'form', interest: traits.interest });
        attimo('track', 'Form Submitted', { form_id: 'signup', interest: traits.interest });
        attimo('flush');
        ev.target.hidden = true;
        show('signup-thanks', true);
      });
    }
  };

  function renderCart() {
    var c = cart();
    var body = document.querySelector('#cart-lines tbody');
    body.textContent = '';
    c.lines.forEach(function (l) {
      var tr = document.createElement('tr');
      [l.name, String(l.quantity), '€ ' + (l.price * l.quantity).toFixed(2)].forEach(function (t) {
        var td = document.createElement('td'); td.textContent = t; tr.appendChild(td);
      });
      var btn = document.createElement('button');
      btn.type = 'button'; btn.className = 'remove'; btn.textContent = 'Remove';
      btn.dataset.productId = l.product_id;
      btn.addEventListener('click', function () {
        var c = cart();
        var removed = c.lines.filter(function (x) { return x.product_id === l.product_id; })[0];
        c.lines = c.lines.filter(function (x) { return x.product_id !== l.product_id; });
        save(c);
        if (removed) attimo('track', 'Product Removed', Object.assign({}, removed, { cart_id: c.cart_id }));
        renderCart();
      });
      var td = document.createElement('td'); td.appendChild(btn); tr.appendChild(td);
      body.appendChild(tr);
    });
    document.getElementById('cart-total').textContent = total(c).toFixed(2);
    show('cart-empty', !c.lines.length);
    document.getElementById('checkout').disabled = !c.lines.length;
  }

  if (pages[data.page]) pages[data.page]();
})();
