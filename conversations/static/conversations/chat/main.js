// The chat page: one WebSocket per tab on the open conversation, speaking the history / history_page /
// start / chunk / tool / done / error protocol. Conversations switch without a page load (pushState).
// This entry wires the modules: socket.js (the connection), thread.js (what is shown, and the frames),
// composer.js (the message box and its controls, with mcp-check.js), actions.js (stop, and each message's
// buttons), shortcuts.js (the keyboard's, and their list), navigation.js (switching conversations),
// sidebar.js (the list of conversations and each one's menu), my-agents.js (the user's own agents), api-keys.js (the user's API keys), budget.js (what is left of the user's budget), with
// their shared state in state.js.
// The template preloads every module this one imports, read from the imports themselves.

import { budgetRefresh } from "./budget.js";
import { connect, frameHandlerSet } from "./socket.js";
import { onFrame } from "./thread.js";
import "./actions.js";
import "./api-keys.js";
import "./my-agents.js";
import "./notice.js";
import "./shortcuts.js";
import "./sidebar.js";

frameHandlerSet(onFrame);
connect();
budgetRefresh();
