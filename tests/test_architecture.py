"""The rooms of docs/architecture.md and the arrows allowed between them, read from the code: a module
added anywhere falls under its folder's rule, and a module added at the top of `conversations/` must be
named below as base or wiring, so none slips past."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
APP = PROJECT / "conversations"

# The top of the app. Base: what every room may use, and which uses only the base itself.
BASE = {
    "context",
    "costs",
    "exceptions",
    "logs",
    "metrics",
    "models",
    "owners",
    "protocol",
    "redisclient",
    "request_limits",
    "text",
    "upstream",
    "url_hosts",
    "usage_ledger",
    "validators",
}
# Wiring: where Django and Channels come in; they may reach every room.
WIRING = {"apps", "checks", "consumers", "routing", "urls"}
# Features: the chat and what it is made of. They use the base and one another (without a circle),
# and never what serves them to a client.
FEATURES = {"accounts", "agents", "apikeys", "attachments", "chat", "knowledge", "mcp", "sharing", "teams"}
# What serves the features: the sockets, the HTTP views, the OpenAI-compatible API, the admin, the
# background jobs.
SERVING = {"relay", "web", "openai_api", "admin", "jobs"}
# Django's own folders: data and commands.
DJANGO = {"migrations", "management", "pooled_postgres", "static"}

# Which rooms each room may import (itself always).
ALLOWED = {
    "base": {"base"},
    **{feature: {"base", *FEATURES} for feature in FEATURES},
    "relay": {"base", *FEATURES},
    "web": {"base", *FEATURES, "relay"},
    "openai_api": {"base", *FEATURES, "relay"},
    "admin": {"base", *FEATURES},
    "jobs": {"base", *FEATURES, "relay"},
    "management": {"base", *FEATURES, "jobs"},
    "pooled_postgres": set(),
    "wiring": {"base", *FEATURES, *SERVING},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PROJECT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    path = PROJECT / Path(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imports_of(path: Path, *, run_time_only: bool = True) -> set[str]:
    """The modules a file imports (at run time: not under TYPE_CHECKING), as absolute dotted names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    type_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if run_time_only and id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            root = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                found.add(f"{root}.{alias.name}" if is_module(f"{root}.{alias.name}") else root)
    return found


def app_files() -> list[Path]:
    return [path for path in APP.rglob("*.py") if "migrations" not in path.parts]


def graph() -> dict[str, set[str]]:
    """Every module of the app and the modules of the app it imports."""
    return {
        module_name(path): {name for name in imports_of(path) if name.startswith("conversations.")}
        for path in app_files()
    }


def room(module: str) -> str:
    """The room a module of the app stands in: a folder's name, or base or wiring for the top."""
    parts = module.split(".")
    if len(parts) == 1:
        return "wiring"  # the app's own __init__
    top = parts[1]
    if top in BASE:
        return "base"
    if top in WIRING:
        return "wiring"
    if top in FEATURES | SERVING | DJANGO:
        return top
    raise AssertionError(f"{module} stands in no room: add it to a folder, or name it in BASE or WIRING")


def test_every_module_stands_in_a_room():
    rooms = {room(module) for module in graph()}
    assert rooms <= {"base", "wiring", *FEATURES, *SERVING, *DJANGO}
    assert room("conversations.chat.turns") == "chat"
    with pytest.raises(AssertionError, match="stands in no room"):
        room("conversations.newcomer")


def test_each_room_imports_only_the_rooms_below_it():
    wrong = {
        f"{module} ({room(module)}) imports {target} ({room(target)})"
        for module, targets in graph().items()
        for target in targets
        if room(target) != room(module) and room(target) not in ALLOWED[room(module)]
    }
    assert not wrong, "\n".join(sorted(wrong))


def test_the_features_never_import_the_relay_the_web_the_admin_or_the_consumer():
    """Spelled out, as the most important of the rules above: a feature must serve the HTTP API and
    background jobs to come as it serves the socket."""
    for module, targets in graph().items():
        if room(module) in FEATURES:
            above = {t for t in targets if room(t) in SERVING or t == "conversations.consumers"}
            assert not above, f"{module} imports {above}"


def test_the_consumer_imports_the_relay_the_protocol_and_the_errors_only():
    allowed = {"conversations.relay", "conversations.protocol", "conversations.exceptions"}
    assert graph()["conversations.consumers"] <= allowed


def test_the_protocol_knows_the_wire_only():
    assert graph()["conversations.protocol"] <= {"conversations.exceptions", "conversations.text"}


def test_only_the_upstream_package_talks_to_dedalus():
    """One client factory, one pool, one error mapping: no other module imports the SDK."""
    for path in [*app_files(), *(PROJECT / "chatproject").rglob("*.py")]:
        module = module_name(path)
        sdk = {
            n for n in imports_of(path, run_time_only=False) if n.split(".")[0] in {"dedalus_labs", "dedalus"}
        }
        if module != "conversations.upstream" and not module.startswith("conversations.upstream."):
            assert not sdk, f"{module} imports {sdk}"


def test_production_never_imports_the_standin():
    for path in [*app_files(), *(PROJECT / "chatproject").rglob("*.py")]:
        standin = {n for n in imports_of(path, run_time_only=False) if n.split(".")[0] == "standin"}
        assert not standin, f"{module_name(path)} imports {standin}"


def test_the_standin_stands_alone():
    """It plays the Dedalus API, so it knows nothing of the app that calls it."""
    for path in (PROJECT / "standin").rglob("*.py"):
        app = {
            n
            for n in imports_of(path, run_time_only=False)
            if n.split(".")[0] in {"conversations", "chatproject"}
        }
        assert not app, f"{module_name(path)} imports {app}"


def circle_find(imports: dict[str, set[str]]) -> list[str]:
    """A chain of imports that comes back to where it started, or []."""
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> list[str]:
        state[module] = "open"
        for target in sorted(imports.get(module, ())):
            if state.get(target) == "open":
                return [*trail[trail.index(target) :], target]
            if target in imports and target not in state and (found := visit(target, [*trail, target])):
                return found
        state[module] = "done"
        return []

    for module in sorted(imports):
        if module not in state and (found := visit(module, [module])):
            return found
    return []


def test_no_import_runs_in_a_circle():
    assert circle_find({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the finder finds one
    assert circle_find(graph()) == []


def test_no_feature_runs_in_a_circle_with_another():
    """Between folders too: if chat uses attachments, attachments does not use chat."""
    rooms: dict[str, set[str]] = {}
    for module, targets in graph().items():
        if room(module) in FEATURES:
            rooms.setdefault(room(module), set()).update(
                room(t) for t in targets if room(t) in FEATURES and room(t) != room(module)
            )
    assert circle_find(rooms) == []
