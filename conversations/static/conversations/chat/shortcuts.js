// Keyboard shortcuts, the ones the best chat apps use, and their list: a dialog opened by `?` (outside a
// text field), Ctrl/⌘+/ (anywhere) or the sidebar's "Keyboard shortcuts". A plain key never acts while
// the user types in a field; the combinations with Ctrl/⌘ (and Shift+Escape) do. Escape stopping the
// reply is actions.js's, Enter sending composer.js's: the list names them too.

import { inputFocus } from "./composer.js";
import { lastReplyCopy } from "./actions.js";

const dialog = document.getElementById("shortcuts-dialog");
const opener = document.getElementById("shortcuts-open");
const search = document.getElementById("conversation-search");
const drawerOpener = document.getElementById("sidebar-open");
const IS_MAC = /Mac|iPhone|iPad/.test(navigator.userAgentData?.platform || navigator.platform || "");

// Where focus was before the list opened: it goes back there when the list closes.
let focusBefore = null;

function listOpen() {
  if (dialog.open) return;
  focusBefore = document.activeElement;
  dialog.showModal();
}

// Inputs that take no typing: a plain key there is free for a shortcut.
const UNTYPED_INPUTS = new Set(["checkbox", "radio", "button", "submit", "reset", "range", "color", "file"]);

function typingIn(target) {
  if (target.isContentEditable || target.matches?.("textarea, select")) return true;
  return target instanceof HTMLInputElement && !UNTYPED_INPUTS.has(target.type);
}

/** Focus the sidebar's search, opening the drawer first where the sidebar is one (narrow screens). */
function searchFocus() {
  if (drawerOpener.offsetParent !== null && drawerOpener.getAttribute("aria-expanded") !== "true") {
    drawerOpener.click();
  }
  search.focus();
  search.select();
}

// Each combination with Ctrl/⌘, by key (lower case) and whether Shift is held.
const WITH_MODIFIER = {
  "/": listOpen,
  k: searchFocus,
  "shift+o": () => document.getElementById("new-chat").click(), // the sidebar's own New chat
  "shift+c": lastReplyCopy,
};

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.isComposing || event.altKey) return;
  const modifier = IS_MAC ? event.metaKey : event.ctrlKey;
  if (modifier) {
    // Shift+/ types `?` on most layouts, so `/` is matched by its key or its place on the keyboard.
    const key = event.code === "Slash" ? "/" : event.key.toLowerCase();
    const action = WITH_MODIFIER[(event.shiftKey && key !== "/" ? "shift+" : "") + key];
    if (action) {
      event.preventDefault();
      action();
    }
    return;
  }
  if (event.metaKey || event.ctrlKey) return;
  if (event.key === "Escape" && event.shiftKey && !dialog.open) {
    event.preventDefault();
    inputFocus();
  } else if (event.key === "?" && !typingIn(event.target) && !dialog.open) {
    event.preventDefault();
    listOpen();
  }
});

opener.addEventListener("click", listOpen);
dialog.addEventListener("close", () => {
  // The close event is queued: by the time it runs, the list may be open again, or the user may have put
  // the focus somewhere already (the browser itself gives it back on close): never take it from there.
  if (dialog.open) return;
  const now = document.activeElement;
  const focusFree = !now || now === document.body || dialog.contains(now);
  if (focusFree && focusBefore && focusBefore.isConnected) focusBefore.focus();
  focusBefore = null;
});
if (IS_MAC) {
  for (const key of dialog.querySelectorAll(".mod-key")) key.textContent = "⌘";
}
