// What is left of the user's budget (GET /api/budget/), said under the composer once it runs low (under a
// fifth of the tightest cap) or is spent; read when the page opens and again after each reply ends or a
// turn is refused for the budget. Nothing is shown to a user no budget caps.

const line = document.getElementById("budget-left");
const PERIODS = { day: "today", month: "this month" };

function timeOf(iso) {
  const at = new Date(iso);
  const sameDay = at.toISOString().slice(0, 10) === new Date().toISOString().slice(0, 10);
  const text = at.toISOString().slice(sameDay ? 11 : 0, 16).replace("T", " ");
  return `${text} UTC`;
}

function amountOf(allowance, key) {
  return allowance.unit === "tokens"
    ? `${Number(allowance[key]).toLocaleString("en")} tokens`
    : `$${allowance[key]}`;
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
  line.textContent = allowance.spent_up
    ? `You have spent ${whose} ${PERIODS[allowance.period]}; it resets at ${timeOf(allowance.resets_at)}.`
    : `${amountOf(allowance, "left")} of ${amountOf(allowance, "amount")} left ${PERIODS[allowance.period]}` +
      ` (${whose}); it resets at ${timeOf(allowance.resets_at)}.`;
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

/** After a reply's end, or a refusal for the budget, what is left has changed. */
export function budgetOnFrame(frame) {
  if (frame.type === "done" || (frame.type === "error" && frame.code === "budget_exceeded")) budgetRefresh();
}
