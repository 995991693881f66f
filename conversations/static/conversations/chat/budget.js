// What is left of the user's budget (GET /api/budget/), said under the composer once it runs low (under a
// fifth of the tightest cap) or is spent; read when the page opens and again after each reply ends or a
// turn is refused for the budget. Nothing is shown to a user no budget caps.

const line = document.getElementById("budget-left");
const PERIODS = { day: "today", month: "this month" };

/** "00:00 UTC" within a day, else with its date: "2027-01-01 00:00 UTC". */
function timeOf(iso) {
  const at = new Date(iso);
  const text = at.toISOString().slice(0, 16).replace("T", " ");
  return `${at - Date.now() < 86_400_000 ? text.slice(11) : text} UTC`;
}

/** "1,000" tokens, or "$2.50". */
function amountOf(allowance, key) {
  return allowance.unit === "tokens" ? Number(allowance[key]).toLocaleString("en") : `$${allowance[key]}`;
}

/** Show `allowance` (the view's answer), or nothing while it is not low. */
export function budgetShow(allowance) {
  if (!line) return;
  if (!allowance || !(allowance.low || allowance.spent_up)) {
    line.hidden = true;
    line.textContent = "";
    return;
  }
  const whose = allowance.subject === "user" ? "your budget" : `the budget of your ${allowance.subject}`;
  const period = PERIODS[allowance.period];
  const resets = `it resets at ${timeOf(allowance.resets_at)}.`;
  const unit = allowance.unit === "tokens" ? " tokens" : "";
  line.textContent = allowance.spent_up
    ? `You have spent ${whose} ${period}; ${resets}`
    : `${amountOf(allowance, "left")} of ${amountOf(allowance, "amount")}${unit} left ${period} (${whose}); ${resets}`;
  line.hidden = false;
}

export async function budgetRefresh() {
  if (!line) return;
  try {
    const response = await fetch("/api/budget/", { credentials: "same-origin" });
    if (response.ok) budgetShow((await response.json()).allowance);
  } catch {
    // Offline for a moment: the next reply's end asks again.
  }
}

// thread.js says so after a reply's end, or a refusal for the budget.
document.addEventListener("chat:spent", budgetRefresh);
