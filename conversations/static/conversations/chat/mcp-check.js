// The server's judgement of the MCP servers chosen, asked once typing pauses: GET /api/mcp-servers/check
// runs a turn's own checks (a private address, too many servers) and sends nothing, so the refusal shows
// under the field before Send rather than in the thread after it.

// Long enough not to ask at every keystroke, short enough to answer before the user reaches Send.
const CHECK_DELAY_MS = 300;

let timer = null;
let inFlight = null;

/**
 * Ask about `servers` once CHECK_DELAY_MS pass without another call, then call `onVerdict(key, message)`
 * with `key` the servers as asked and `message` the refusal ("" when they pass). A later call cancels an
 * earlier one's question; no answer (offline, signed out) calls nothing: the turn still checks them.
 */
export function mcpCheckSoon(servers, onVerdict) {
  clearTimeout(timer);
  if (inFlight) inFlight.abort();
  inFlight = null;
  const key = servers.join(",");
  if (!key) return;
  timer = setTimeout(async () => {
    const controller = new AbortController();
    inFlight = controller;
    try {
      const response = await fetch(`/api/mcp-servers/check?servers=${encodeURIComponent(key)}`, {
        headers: { Accept: "application/json" },
        signal: controller.signal,
      });
      if (!response.ok) return;
      const answer = await response.json();
      onVerdict(key, answer.ok ? "" : answer.message || "That MCP server is not allowed.");
    } catch {
      // Cancelled by a newer question, or no network: either way the turn checks them again.
    } finally {
      if (inFlight === controller) inFlight = null;
    }
  }, CHECK_DELAY_MS);
}
