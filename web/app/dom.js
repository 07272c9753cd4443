// Tiny DOM helpers: elements are built with `h`, text always goes through textContent (never
// innerHTML), so nothing a server or a user sends can become markup.

/**
 * Creates an element. `props`: `class`, `dataset`, `on<Event>` listeners, boolean attributes
 * (true → present, false/null/undefined → absent) and any other attribute as a string.
 * Children: nodes, strings, numbers, arrays; null/undefined/false are skipped.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') {
      el.className = value;
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'value' && 'value' in el) {
      el.value = String(value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Replaces every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let ids = 0;
/** A unique element id with a readable prefix. */
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

/**
 * A labelled form field: label, control, hint and an error line wired with aria-describedby.
 * Returns { wrap, input, setError(message) }.
 */
export function field({ label, id, hint, control }) {
  const input = control;
  input.id = id;
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const described = [];
  const hintEl = hint ? h('p', { class: 'hint', id: hintId }, hint) : null;
  if (hintEl) described.push(hintId);
  const errorEl = h('p', { class: 'field-error', id: errorId, hidden: true });
  described.push(errorId);
  input.setAttribute('aria-describedby', described.join(' '));
  const wrap = h('div', { class: 'field' }, h('label', { for: id }, label), input, hintEl, errorEl);
  return {
    wrap,
    input,
    hint: hintEl,
    setError(message) {
      if (message) {
        errorEl.textContent = message;
        errorEl.hidden = false;
        input.setAttribute('aria-invalid', 'true');
      } else {
        errorEl.textContent = '';
        errorEl.hidden = true;
        input.removeAttribute('aria-invalid');
      }
    },
  };
}

/**
 * A message area. `show(kind, text, ...extra)` with kind error|success|info|warning; errors
 * are announced at once (role=alert), the others politely.
 */
export function messageArea() {
  const el = h('div', { class: 'message-area' });
  return {
    el,
    show(kind, text, ...extra) {
      // A newer message makes the notice left by the last navigation stale.
      for (const old of document.querySelectorAll('.page-notice')) old.remove();
      const box = h(
        'div',
        { class: `alert alert-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
        h('p', null, text),
        extra.length ? h('div', { class: 'alert-actions' }, extra) : null,
      );
      replace(el, box);
      return box;
    },
    clear() {
      el.replaceChildren();
    },
  };
}

/** A status badge, e.g. PAID, ONSALE. */
export function badge(status, label = status) {
  return h('span', { class: `badge badge-${String(status).toLowerCase()}` }, label);
}

/** Sets a button's busy state (disabled, aria-busy, a temporary label). */
export function setBusy(button, busy, busyLabel) {
  if (busy) {
    if (!button.dataset.label) button.dataset.label = button.textContent;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    if (busyLabel) button.textContent = busyLabel;
  } else {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    if (button.dataset.label) {
      button.textContent = button.dataset.label;
      delete button.dataset.label;
    }
  }
}

/**
 * A data table that keeps its table semantics when the phone layout turns its rows into cards
 * (CSS display changes drop them in some browsers, so the ARIA roles are explicit).
 * columns: [{ label, className?, inline? }] — `inline: false` keeps the label out of the
 * phone card (action buttons). rows: [{ attrs?, cells: [content | { content, attrs }] }].
 */
export function table({ caption, columns, rows, className = 'table' }) {
  const cell = (c, column) => {
    const spec = c && typeof c === 'object' && !(c instanceof Node) && !Array.isArray(c) && 'content' in c ? c : { content: c };
    return h(
      'td',
      {
        role: 'cell',
        class: column.className ?? null,
        'data-label': column.inline === false ? null : column.label,
        ...(spec.attrs ?? {}),
      },
      spec.content,
    );
  };
  return h(
    'table',
    { class: className, role: 'table' },
    caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
    h('thead', { role: 'rowgroup' }, h('tr', { role: 'row' }, columns.map((c) => h('th', { scope: 'col', role: 'columnheader' }, c.label)))),
    h(
      'tbody',
      { role: 'rowgroup' },
      rows.map((r) => h('tr', { role: 'row', ...(r.attrs ?? {}) }, r.cells.map((c, i) => cell(c, columns[i])))),
    ),
  );
}
