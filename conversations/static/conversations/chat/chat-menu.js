// A small accessible menu opened by a "⋯" button (the WAI-ARIA menu button pattern): the button has
// aria-haspopup="menu" and aria-expanded; the items are role="menuitem", reached with the arrow keys,
// Home and End; Escape closes and gives the focus back to the button, as does choosing an item; Tab or a
// click elsewhere closes it. One menu is open at a time.

let current = null; // { menu, button }

export function close({ focus = false } = {}) {
  if (!current) return;
  const { menu, button } = current;
  current = null;
  menu.remove();
  button.setAttribute("aria-expanded", "false");
  if (focus) button.focus();
}

function itemsOf(menu) {
  return Array.from(menu.querySelectorAll("[role=menuitem]"));
}

function focusStep(menu, step) {
  const items = itemsOf(menu);
  const at = items.indexOf(document.activeElement);
  items[(at + step + items.length) % items.length].focus();
}

/**
 * Open a menu under `button` with `items`, each `{ label, action }` (a function, called after the menu
 * closes) or `{ label, href, download }` (a link), with an optional `danger` flag; the first item takes
 * the focus. Clicking the button of the open menu closes it.
 */
export function open(button, items, { label = "Actions" } = {}) {
  const again = current && current.button === button;
  close();
  if (again) return;
  const menu = document.createElement("ul");
  menu.className = "chat-menu";
  menu.setAttribute("role", "menu");
  menu.setAttribute("aria-label", label);
  if (!button.id) button.id = `menu-button-${Math.random().toString(36).slice(2)}`;
  menu.setAttribute("aria-labelledby", button.id);
  for (const item of items) {
    const entry = document.createElement("li");
    entry.setAttribute("role", "none");
    const control = document.createElement(item.href ? "a" : "button");
    control.setAttribute("role", "menuitem");
    control.tabIndex = -1;
    control.textContent = item.label;
    control.dataset.menuItem = item.id || item.label;
    if (item.danger) control.classList.add("danger");
    if (item.href) {
      control.href = item.href;
      if (item.download) control.setAttribute("download", "");
      control.addEventListener("click", () => close({ focus: true }));
    } else {
      control.type = "button";
      control.addEventListener("click", () => {
        close({ focus: true });
        item.action();
      });
    }
    entry.appendChild(control);
    menu.appendChild(entry);
  }
  menu.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") focusStep(menu, 1);
    else if (event.key === "ArrowUp") focusStep(menu, -1);
    else if (event.key === "Home") itemsOf(menu)[0].focus();
    else if (event.key === "End") itemsOf(menu).at(-1).focus();
    else if (event.key === "Escape") close({ focus: true });
    else if (event.key === "Tab") close();
    else return;
    event.preventDefault();
    event.stopPropagation(); // Escape closes the menu only: not the drawer, not the reply
  });
  document.body.appendChild(menu);
  const place = button.getBoundingClientRect();
  const width = menu.offsetWidth;
  menu.style.top = `${Math.min(place.bottom + 4, window.innerHeight - menu.offsetHeight - 8)}px`;
  menu.style.left = `${Math.max(8, Math.min(place.right - width, window.innerWidth - width - 8))}px`;
  button.setAttribute("aria-expanded", "true");
  current = { menu, button };
  itemsOf(menu)[0].focus();
}

document.addEventListener("pointerdown", (event) => {
  if (current && !current.menu.contains(event.target) && !current.button.contains(event.target)) close();
});
window.addEventListener("resize", () => close());
// The menu is placed under its button once: a scroll that would move the button away closes it.
document.addEventListener("scroll", (event) => {
  if (current && !current.menu.contains(event.target)) close();
}, true);

/** A "⋯" button that opens a menu (its items asked of `itemsFor` each time it opens). */
export function button(label, itemsFor) {
  const node = document.createElement("button");
  node.type = "button";
  node.className = "menu-button"; // its "⋯" is drawn by the style sheet: the entry's text stays its title
  node.setAttribute("aria-label", label);
  node.setAttribute("aria-haspopup", "menu");
  node.setAttribute("aria-expanded", "false");
  node.addEventListener("click", () => open(node, itemsFor(), { label }));
  return node;
}
