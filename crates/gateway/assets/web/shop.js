// The storefront (SPEC §7): catalog, product page, cart, checkout, orders that move live
// through the saga, wallet and notifications. Hash routes: #/, #/product/ID, #/cart,
// #/checkout, #/orders, #/orders/ID, #/wallet, #/notifications, #/login, #/register.

import { api, request, logIn, logOut, session, money, when, el, field, announce, guarded, followStream } from './api.js';

const view = document.getElementById('view');
const TERMINAL = ['confirmed', 'shipped', 'delivered', 'rejected', 'cancelled'];
const FINAL = ['delivered', 'rejected', 'cancelled'];
/** Stops the order page's live stream when the shopper leaves it. */
let leaving = new AbortController();

function label(status) {
  return String(status || '').replace(/_/g, ' ');
}

function badge(status) {
  return el('span', { class: `badge ${status}`, 'data-status': status }, label(status));
}

function show(title, ...content) {
  document.title = `${title} · eventshop`;
  view.replaceChildren(el('h1', {}, title), ...content);
}

function needsLogin() {
  if (session()) return false;
  show('Please log in', el('p', {}, 'This page is for customers who are logged in. ', el('a', { href: '#/login' }, 'Log in'), ' or ', el('a', { href: '#/register' }, 'create an account'), '.'));
  return true;
}

async function renderNav() {
  const current = session();
  const items = [el('a', { href: '#/' }, 'Catalog')];
  if (current) {
    items.push(el('a', { href: '#/cart', id: 'nav-cart' }, 'Cart'));
    items.push(el('a', { href: '#/orders' }, 'My orders'));
    items.push(el('a', { href: '#/wallet' }, 'Wallet'));
    items.push(el('a', { href: '#/notifications', id: 'nav-notifications' }, 'Notifications'));
    if (current.user && current.user.role === 'admin') items.push(el('a', { href: '/dashboard' }, 'Dashboard'));
    items.push(el('span', { class: 'muted' }, current.user ? current.user.email : ''));
    items.push(el('button', { type: 'button', class: 'link', onclick: () => { logOut(); location.hash = '#/'; renderNav(); } }, 'Log out'));
  } else {
    items.push(el('a', { href: '#/login' }, 'Log in'), el('a', { href: '#/register' }, 'Register'));
  }
  document.getElementById('nav').replaceChildren(...items.map((item) => el('li', {}, item)));
  if (current) refreshCounts();
}

async function refreshCounts() {
  try {
    const cart = await api('GET', '/api/cart');
    const count = cart.items.reduce((sum, line) => sum + line.quantity, 0);
    const link = document.getElementById('nav-cart');
    if (link) link.textContent = count ? `Cart (${count})` : 'Cart';
    const notes = await api('GET', '/api/notifications?limit=100');
    const unread = notes.items.filter((note) => !note.read).length;
    const bell = document.getElementById('nav-notifications');
    if (bell) bell.textContent = unread ? `Notifications (${unread})` : 'Notifications';
  } catch {
    // Counts are a convenience; the pages themselves report errors.
  }
}

async function addToCart(productId, quantity) {
  if (!session()) {
    location.hash = '#/login';
    announce('Log in to add products to your cart.');
    return;
  }
  const cart = await api('GET', '/api/cart');
  const line = cart.items.find((item) => item.product_id === productId);
  const total = (line ? line.quantity : 0) + quantity;
  await api('PUT', `/api/cart/items/${productId}`, { quantity: total });
  announce(`Added to your cart (${total} in cart).`, 'ok');
  refreshCounts();
}

function productCard(product) {
  return el('li', { class: 'card product', 'data-product-id': product.id },
    el('h2', {}, el('a', { href: `#/product/${product.id}` }, product.name)),
    el('span', { class: 'muted' }, product.category),
    el('span', { class: 'price' }, money(product.price)),
    el('span', { class: 'muted' }, `${product.available} in stock · ${product.rating ? `★ ${Number(product.rating).toFixed(1)}` : 'no ratings yet'}`),
    el('button', { type: 'button', disabled: product.available < 1, 'aria-label': `Add ${product.name} to cart`, onclick: () => addToCart(product.id, 1).catch((e) => announce(e.message, 'error')) }, product.available < 1 ? 'Sold out' : 'Add to cart'));
}

async function catalog(params) {
  const query = new URLSearchParams();
  for (const name of ['q', 'category', 'sort']) if (params.get(name)) query.set(name, params.get(name));
  for (const name of ['min_price', 'max_price']) {
    const value = params.get(name);
    if (value) query.set(name, String(Math.round(Number(value) * 100)));
  }
  query.set('limit', '48');
  const filters = el('form', { class: 'filters', role: 'search', 'aria-label': 'Search the catalog', onsubmit: (event) => {
    event.preventDefault();
    const data = new URLSearchParams();
    for (const [name, value] of new FormData(event.currentTarget)) if (value) data.set(name, value);
    location.hash = `#/?${data}`;
  } },
  field('Search', { type: 'search', name: 'q', id: 'search', value: params.get('q') || '' }),
  field('Category', { type: 'text', name: 'category', value: params.get('category') || '', list: 'categories' }),
  field('Min price (€)', { type: 'number', name: 'min_price', min: 0, step: '0.01', value: params.get('min_price') || '' }),
  field('Max price (€)', { type: 'number', name: 'max_price', min: 0, step: '0.01', value: params.get('max_price') || '' }),
  el('label', {}, el('span', {}, 'Sort'), el('select', { name: 'sort' },
    ...[['', 'Relevance'], ['price_asc', 'Price: low to high'], ['price_desc', 'Price: high to low'], ['rating', 'Rating'], ['newest', 'Newest']]
      .map(([value, text]) => el('option', { value, selected: (params.get('sort') || '') === value }, text)))),
  el('button', { type: 'submit' }, 'Search'));
  show('Catalog', filters, el('p', {}, 'Loading products…'));
  let page;
  try {
    page = await api('GET', `/api/products?${query}`);
  } catch (error) {
    view.lastChild.replaceWith(el('p', { role: 'alert' }, error.message));
    return;
  }
  const categories = [...new Set(page.items.map((product) => product.category))];
  view.lastChild.replaceWith(
    el('datalist', { id: 'categories' }, ...categories.map((category) => el('option', { value: category }))),
    page.items.length ? el('ul', { class: 'grid', id: 'products' }, ...page.items.map(productCard)) : el('p', {}, 'No product matches.'));
}

async function productPage(id) {
  const product = await api('GET', `/api/products/${id}`);
  const quantity = el('input', { type: 'number', id: 'quantity', name: 'quantity', min: 1, value: 1 });
  show(product.name,
    el('div', { class: 'two' },
      el('section', { 'aria-label': 'Product' },
        el('p', {}, product.description),
        el('p', { class: 'price' }, money(product.price)),
        el('p', { class: 'muted' }, `${product.category} · ${product.available} in stock · ${product.review_count} reviews${product.rating ? ` · ★ ${Number(product.rating).toFixed(1)}` : ''}`),
        el('form', { class: 'inline', onsubmit: guarded(async () => addToCart(product.id, Math.max(1, Number(quantity.value) || 1))) },
          el('label', { for: 'quantity' }, el('span', {}, 'Quantity'), quantity),
          el('button', { type: 'submit', id: 'add-to-cart', disabled: product.available < 1 }, 'Add to cart')),
        el('h2', {}, 'Reviews'), el('div', { id: 'reviews' }, 'Loading…')),
      el('aside', { 'aria-label': 'Recommendations' }, el('h2', {}, 'Bought together'), el('div', { id: 'recommendations' }, 'Loading…'))));
  loadReviews(product.id);
  api('GET', `/api/products/${product.id}/recommendations`).then((list) => {
    const items = list.items || [];
    document.getElementById('recommendations').replaceChildren(items.length
      ? el('ul', {}, ...items.map((item) => el('li', {}, el('a', { href: `#/product/${item.product_id}` }, item.name || item.product_id), item.price ? ` · ${money(item.price)}` : '')))
      : el('p', { class: 'muted' }, 'No recommendations yet.'));
  }).catch((error) => { document.getElementById('recommendations').textContent = error.message; });
}

async function loadReviews(productId) {
  const box = document.getElementById('reviews');
  const page = await api('GET', `/api/products/${productId}/reviews`).catch((error) => ({ error }));
  if (page.error) { box.textContent = page.error.message; return; }
  const items = page.items || [];
  const list = items.length
    ? el('ul', {}, ...items.map((review) => el('li', { class: 'card' },
      el('strong', {}, `${'★'.repeat(review.rating)}${'☆'.repeat(5 - review.rating)} ${review.title}`),
      el('span', {}, review.body),
      el('span', { class: 'muted' }, `${when(review.created_at)}${review.verified_purchase ? ' · verified purchase' : ''}`))))
    : el('p', { class: 'muted' }, 'No reviews yet.');
  const form = session() ? el('form', { class: 'stack', 'aria-label': 'Write a review', onsubmit: guarded(async (data, form) => {
    await api('POST', `/api/products/${productId}/reviews`, { rating: Number(data.get('rating')), title: data.get('title'), body: data.get('body') });
    form.reset();
    announce('Thank you for your review.', 'ok');
    loadReviews(productId);
  }) },
  el('h3', {}, 'Write a review'),
  el('label', {}, el('span', {}, 'Rating'), el('select', { name: 'rating' }, ...[5, 4, 3, 2, 1].map((n) => el('option', { value: n }, `${n} stars`)))),
  field('Title', { name: 'title', required: true, maxlength: 200 }),
  el('label', {}, el('span', {}, 'Review'), el('textarea', { name: 'body', required: true, rows: 3 })),
  el('button', { type: 'submit' }, 'Publish review')) : null;
  box.replaceChildren(list, form || '');
}

async function cartPage() {
  if (needsLogin()) return;
  const cart = await api('GET', '/api/cart');
  if (!cart.items.length) {
    show('Your cart', el('p', {}, 'Your cart is empty. ', el('a', { href: '#/' }, 'Browse the catalog'), '.'));
    return;
  }
  const rows = cart.items.map((line) => el('tr', { 'data-product-id': line.product_id },
    el('td', {}, el('a', { href: `#/product/${line.product_id}` }, line.name)),
    el('td', { class: 'number' }, money(line.unit_price)),
    el('td', { class: 'number' }, el('label', { class: 'sr-only', for: `q-${line.product_id}` }, `Quantity of ${line.name}`),
      el('input', { id: `q-${line.product_id}`, type: 'number', min: 1, value: line.quantity, onchange: async (event) => {
        try {
          await api('PUT', `/api/cart/items/${line.product_id}`, { quantity: Number(event.target.value) });
          cartPage();
          refreshCounts();
        } catch (error) { announce(error.message, 'error'); }
      } })),
    el('td', { class: 'number' }, money(line.line_total)),
    el('td', {}, el('button', { type: 'button', class: 'danger', onclick: async () => {
      await api('DELETE', `/api/cart/items/${line.product_id}`).catch((error) => announce(error.message, 'error'));
      announce(`${line.name} removed.`);
      cartPage();
      refreshCounts();
    } }, 'Remove'))));
  show('Your cart',
    el('table', {}, el('caption', { class: 'sr-only' }, 'Cart'),
      el('thead', {}, el('tr', {}, el('th', {}, 'Product'), el('th', { class: 'number' }, 'Price'), el('th', { class: 'number' }, 'Quantity'), el('th', { class: 'number' }, 'Total'), el('th', {}, el('span', { class: 'sr-only' }, 'Actions')))),
      el('tbody', {}, ...rows),
      el('tfoot', {}, el('tr', {}, el('th', { colspan: 3 }, 'Total'), el('td', { class: 'number price', id: 'cart-total' }, money(cart.total)), el('td', {})))),
    el('p', { class: 'row' }, el('a', { href: '#/checkout', id: 'to-checkout' }, 'Go to checkout'), el('button', { type: 'button', class: 'secondary', onclick: async () => {
      await api('DELETE', '/api/cart');
      cartPage();
      refreshCounts();
    } }, 'Empty the cart')));
}

async function checkoutPage() {
  if (needsLogin()) return;
  const [cart, wallet] = await Promise.all([api('GET', '/api/cart'), api('GET', '/api/wallet')]);
  const user = session().user || {};
  const form = el('form', { class: 'stack', id: 'checkout', 'aria-label': 'Checkout', onsubmit: guarded(async (data) => {
    const address = { name: data.get('name'), line1: data.get('line1'), city: data.get('city'), postal_code: data.get('postal_code'), country: String(data.get('country')).toUpperCase() };
    if (data.get('line2')) address.line2 = data.get('line2');
    const method = data.get('payment') === 'card' ? { type: 'card', token: data.get('token') } : { type: 'wallet' };
    const answer = await api('POST', '/api/cart/checkout', { shipping_address: address, payment_method: method });
    announce('Order placed.', 'ok');
    refreshCounts();
    location.hash = `#/orders/${answer.order_id}`;
  }) },
  el('fieldset', {}, el('legend', {}, 'Shipping address'),
    field('Name', { name: 'name', required: true, value: user.name || '', autocomplete: 'name' }),
    field('Street', { name: 'line1', required: true, autocomplete: 'address-line1' }),
    field('Street, second line (optional)', { name: 'line2', autocomplete: 'address-line2' }),
    field('City', { name: 'city', required: true, autocomplete: 'address-level2' }),
    field('Postal code', { name: 'postal_code', required: true, autocomplete: 'postal-code' }),
    field('Country (two letters)', { name: 'country', required: true, value: 'DE', maxlength: 2, autocomplete: 'country' })),
  el('fieldset', {}, el('legend', {}, 'Payment'),
    el('label', { class: 'choice' }, el('input', { type: 'radio', name: 'payment', value: 'wallet', id: 'pay-wallet', checked: true }), `Wallet (balance ${money(wallet.balance)})`),
    el('label', { class: 'choice' }, el('input', { type: 'radio', name: 'payment', value: 'card', id: 'pay-card' }), 'Card'),
    field('Card token (test cards: tok_visa, tok_chargeDeclined)', { name: 'token', id: 'card-token', value: 'tok_visa' })),
  el('p', {}, 'Total: ', el('strong', {}, money(cart.total))),
  el('button', { type: 'submit', id: 'place-order', disabled: !cart.items.length }, 'Place order'));
  show('Checkout', cart.items.length ? form : el('p', {}, 'Your cart is empty.'), el('p', {}, el('a', { href: '#/wallet' }, 'Top up your wallet')));
}

function renderOrder(order, box) {
  box.replaceChildren(
    el('p', { class: 'status-big' }, 'Status: ', el('span', { id: 'order-status' }, badge(order.status)), order.reason ? el('span', { class: 'muted' }, ` (${label(order.reason)})`) : ''),
    el('h2', {}, 'Progress'),
    el('ol', { class: 'history', id: 'order-history' }, ...order.history.map((change) => el('li', {}, badge(change.status), ' ', el('span', { class: 'muted' }, when(change.at))))),
    el('h2', {}, 'Items'),
    el('ul', {}, ...order.items.map((line) => el('li', {}, el('a', { href: `#/product/${line.product_id}` }, line.name || 'Product'), ` × ${line.quantity} at ${money(line.unit_price)}`))),
    el('p', {}, 'Total: ', el('strong', {}, money(order.total)), ` · paid by ${order.payment_method.type}`),
    ['pending', 'stock_reserved', 'paid', 'confirmed'].includes(order.status)
      ? el('button', { type: 'button', class: 'danger', onclick: async () => {
        try {
          await api('POST', `/api/orders/${order.id}/cancel`);
          announce('Cancellation requested.');
        } catch (error) { announce(error.message, 'error'); }
      } }, 'Cancel order') : '');
}

async function orderPage(id) {
  if (needsLogin()) return;
  const signal = leaving.signal;
  const box = el('div', { id: 'order' });
  show(`Order ${id.slice(0, 8)}…`, box, el('p', {}, el('a', { href: '#/orders' }, 'All my orders')));
  let order = await api('GET', `/api/orders/${id}`);
  renderOrder(order, box);
  let last = order.status;
  const update = (status) => {
    if (status === last) return;
    last = status;
    // The cart empties and a notification arrives as the saga ends.
    if (TERMINAL.includes(status)) {
      refreshCounts();
      setTimeout(refreshCounts, 1500);
    }
    announce(`Order status: ${label(status)}.`, ['rejected', 'cancelled'].includes(status) ? 'error' : 'ok');
  };
  // Live: the order's status stream, read with fetch so that the token can be sent; the
  // stream ends at a terminal status. Then, and if it fails, poll until the order is final.
  try {
    await followStream(`/api/orders/${id}/events`, async (name, data) => {
      if (signal.aborted || !data || !data.status) return;
      order = await api('GET', `/api/orders/${id}`);
      if (!signal.aborted) renderOrder(order, box);
      update(data.status);
    }, signal);
  } catch (error) {
    if (signal.aborted) return;
  }
  while (!signal.aborted) {
    order = await api('GET', `/api/orders/${id}`).catch(() => order);
    if (signal.aborted) return;
    renderOrder(order, box);
    update(order.status);
    if (FINAL.includes(order.status)) return;
    await new Promise((resolve) => setTimeout(resolve, TERMINAL.includes(order.status) ? 5000 : 1500));
  }
}

async function ordersPage() {
  if (needsLogin()) return;
  const page = await api('GET', '/api/orders?limit=50');
  show('My orders', page.items.length
    ? el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'Order'), el('th', {}, 'Placed'), el('th', {}, 'Status'), el('th', { class: 'number' }, 'Total'))),
      el('tbody', {}, ...page.items.map((order) => el('tr', {},
        el('td', {}, el('a', { href: `#/orders/${order.id}` }, el('code', {}, order.id))),
        el('td', {}, when(order.created_at)), el('td', {}, badge(order.status)), el('td', { class: 'number' }, money(order.total))))))
    : el('p', {}, 'No orders yet.'));
}

async function walletPage() {
  if (needsLogin()) return;
  const [wallet, transactions] = await Promise.all([api('GET', '/api/wallet'), api('GET', '/api/wallet/transactions?limit=50')]);
  show('Wallet',
    el('p', { class: 'status-big' }, 'Balance: ', el('strong', { id: 'wallet-balance' }, money(wallet.balance))),
    el('form', { class: 'inline', id: 'deposit', 'aria-label': 'Deposit', onsubmit: guarded(async (data) => {
      const amount = Math.round(Number(data.get('amount')) * 100);
      await api('POST', '/api/wallet/deposits', { amount: { amount, currency: wallet.currency } });
      announce(`Deposited ${money({ amount, currency: wallet.currency })}.`, 'ok');
      walletPage();
    }) }, field('Amount (€)', { type: 'number', name: 'amount', id: 'deposit-amount', min: '0.01', step: '0.01', required: true }), el('button', { type: 'submit' }, 'Deposit')),
    el('h2', {}, 'Transactions'),
    transactions.items.length
      ? el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'When'), el('th', {}, 'Kind'), el('th', { class: 'number' }, 'Amount'), el('th', {}, 'Order'))),
        el('tbody', {}, ...transactions.items.map((t) => el('tr', {}, el('td', {}, when(t.at)), el('td', {}, label(t.kind)), el('td', { class: 'number' }, money(t.amount)),
          el('td', {}, t.order_id ? el('a', { href: `#/orders/${t.order_id}` }, t.order_id.slice(0, 8)) : '')))))
      : el('p', { class: 'muted' }, 'No transactions yet.'));
}

async function notificationsPage() {
  if (needsLogin()) return;
  const page = await api('GET', '/api/notifications?limit=50');
  show('Notifications', page.items.length
    ? el('ul', { class: 'grid' }, ...page.items.map((note) => el('li', { class: 'card' },
      el('h2', {}, note.subject), el('span', {}, note.body), el('span', { class: 'muted' }, when(note.created_at)),
      note.order_id ? el('a', { href: `#/orders/${note.order_id}` }, 'See the order') : '',
      note.read ? el('span', { class: 'muted' }, 'Read') : el('button', { type: 'button', class: 'secondary', onclick: async () => {
        await api('POST', `/api/notifications/${note.id}/read`).catch((error) => announce(error.message, 'error'));
        notificationsPage();
        refreshCounts();
      } }, 'Mark as read'))))
    : el('p', {}, 'No notifications.'));
}

function loginPage() {
  show('Log in', el('form', { class: 'stack', id: 'login', onsubmit: guarded(async (data) => {
    await logIn(data.get('email'), data.get('password'));
    announce('Logged in.', 'ok');
    renderNav();
    location.hash = '#/';
  }) },
  field('Email', { type: 'email', name: 'email', id: 'login-email', required: true, autocomplete: 'username' }),
  field('Password', { type: 'password', name: 'password', id: 'login-password', required: true, autocomplete: 'current-password' }),
  el('button', { type: 'submit' }, 'Log in')));
}

function registerPage() {
  show('Create an account', el('form', { class: 'stack', id: 'register', onsubmit: guarded(async (data) => {
    await api('POST', '/api/users', { email: data.get('email'), password: data.get('password'), name: data.get('name') });
    await logIn(data.get('email'), data.get('password'));
    announce('Welcome! Your account is ready.', 'ok');
    renderNav();
    location.hash = '#/';
  }) },
  field('Name', { name: 'name', id: 'register-name', required: true, autocomplete: 'name' }),
  field('Email', { type: 'email', name: 'email', id: 'register-email', required: true, autocomplete: 'email' }),
  field('Password (at least 8 characters)', { type: 'password', name: 'password', id: 'register-password', required: true, minlength: 8, autocomplete: 'new-password' }),
  el('button', { type: 'submit' }, 'Create account')));
}

async function route() {
  leaving.abort();
  leaving = new AbortController();
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, search] = hash.split('?');
  const parts = path.split('/').filter(Boolean);
  try {
    if (parts[0] === 'product' && parts[1]) await productPage(parts[1]);
    else if (parts[0] === 'cart') await cartPage();
    else if (parts[0] === 'checkout') await checkoutPage();
    else if (parts[0] === 'orders' && parts[1]) await orderPage(parts[1]);
    else if (parts[0] === 'orders') await ordersPage();
    else if (parts[0] === 'wallet') await walletPage();
    else if (parts[0] === 'notifications') await notificationsPage();
    else if (parts[0] === 'login') loginPage();
    else if (parts[0] === 'register') registerPage();
    else await catalog(new URLSearchParams(search || ''));
  } catch (error) {
    if (error.status === 401) {
      logOut();
      renderNav();
    }
    show('Something went wrong', el('p', { role: 'alert' }, error.message));
  }
}

window.addEventListener('hashchange', () => {
  announce('');
  route();
});
renderNav();
route();
