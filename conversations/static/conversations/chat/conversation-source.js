// Which conversations the sidebar lists: the page's own ("Chats") or those made through the
// OpenAI-compatible API ("API"), chosen with the sidebar's filter (native radio buttons: Tab reaches the
// chosen one, the arrow keys choose) and remembered in this browser. The template renders the filter only
// for a user who has API conversations; without it the list holds every conversation, as it always did.

const KEY = "chat:conversation-source";
const filter = document.getElementById("source-filter");

function choice(source) {
  return filter.querySelector(`input[value="${source}"]`);
}

if (filter) {
  const saved = localStorage.getItem(KEY);
  if (saved === "page" || saved === "api") choice(saved).checked = true;
}

/** The `source` the list asks for: "page" or "api"; "" (every conversation) where there is no filter. */
export function listedSource() {
  return filter ? filter.querySelector("input:checked").value : "";
}

/** Show the conversations of `source` ("page" or "api") from now on, in this browser. */
export function sourceShow(source) {
  if (!filter) return;
  choice(source).checked = true;
  localStorage.setItem(KEY, source);
}

/** Call `changed(source)` when the user picks the other source. */
export function onSourcePicked(changed) {
  filter?.addEventListener("change", () => {
    localStorage.setItem(KEY, listedSource());
    changed(listedSource());
  });
}
