// Light or dark: the system's setting unless the user chose one with the toggle (kept in localStorage).
// Loaded in <head> as a classic script, the page's only one: it runs as it is parsed, so the chosen theme
// applies before the first paint (a module would wait for the whole page, and the other theme would flash).
"use strict";

(() => {
  const KEY = "chat-theme";
  const root = document.documentElement;
  let chosen = null; // the choice of this page when storage is blocked
  const stored = () => {
    try {
      return localStorage.getItem(KEY);
    } catch {
      return chosen;
    }
  };
  const systemDark = () => window.matchMedia("(prefers-color-scheme: dark)").matches;
  const isDark = () => (stored() ? stored() === "dark" : systemDark());

  // The toggle names the mode it switches to, with its icon (not a state it calls "pressed").
  function apply() {
    root.dataset.theme = isDark() ? "dark" : "light";
    const toggle = document.getElementById("theme-toggle");
    if (toggle) toggle.textContent = isDark() ? "☀ Light mode" : "☾ Dark mode";
  }

  apply();
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", apply);
  document.addEventListener("DOMContentLoaded", () => {
    apply();
    const toggle = document.getElementById("theme-toggle");
    if (!toggle) return;
    toggle.addEventListener("click", () => {
      const next = isDark() ? "light" : "dark";
      try {
        // Choosing what the system already says means "follow the system" again.
        if ((next === "dark") === systemDark()) localStorage.removeItem(KEY);
        else localStorage.setItem(KEY, next);
      } catch {
        chosen = next; // storage blocked: remembered for this page only
      }
      apply();
    });
  });
})();
