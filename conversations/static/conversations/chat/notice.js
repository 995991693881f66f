// The stand-in's notice: said once, then dismissed for good in this browser (it says the same every time).
const KEY = "chat:standin-notice-dismissed";
const notice = document.getElementById("standin-notice");

if (notice) {
  if (localStorage.getItem(KEY)) notice.hidden = true;
  document.getElementById("standin-notice-close").addEventListener("click", () => {
    notice.hidden = true;
    localStorage.setItem(KEY, "1");
    document.getElementById("input").focus();
  });
}
