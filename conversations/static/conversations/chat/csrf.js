// The CSRF token the page's own requests send (Django's csrftoken cookie), for every module that posts, and
// the JSON request the page's dialogs make with it.

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

/** Send `body` as JSON to one of the page's JSON views; return its answer, or throw its message. */
export async function jsonRequest(method, url, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.message || `The server answered ${response.status}.`);
  return answer;
}
