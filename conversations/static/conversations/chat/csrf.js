// The CSRF token the page's own requests send (Django's csrftoken cookie), for every module that posts.

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}
