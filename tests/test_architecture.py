"""The import direction of docs/architecture.md, read from the code: it stays true or CI says so."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "conversations"
DOMAIN = {
    "turns",
    "replies",
    "titles",
    "upkeep",
    "quotas",
    "selectors",
    "threads",
    "models",
    "agents",
    "answerers",
    "catalog",
    "shares",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    path = APP.parent / Path(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def app_imports(path: Path) -> set[str]:
    """The modules of the app that a file imports at run time (not under TYPE_CHECKING)."""
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
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("conversations"))
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            root = ".".join([*base, *([node.module] if node.module else [])])
            if root.startswith("conversations"):
                for alias in node.names:
                    found.add(f"{root}.{alias.name}" if is_module(f"{root}.{alias.name}") else root)
    return found


def graph() -> dict[str, set[str]]:
    return {
        module_name(path): app_imports(path)
        for path in APP.rglob("*.py")
        if "migrations" not in path.parts and "management" not in path.parts
    }


def test_the_consumer_imports_the_relay_the_protocol_and_the_errors_only():
    allowed = {"conversations.relay", "conversations.protocol", "conversations.exceptions"}
    assert graph()["conversations.consumers"] <= allowed


def test_the_domain_never_imports_the_relay_the_consumers_or_the_views():
    for module, imports in graph().items():
        if module in {f"conversations.{name}" for name in DOMAIN}:
            above = {name for name in imports if name.startswith("conversations.relay")}
            above |= imports & {"conversations.consumers", "conversations.web.views"}
            assert not above, f"{module} imports {above}"


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


def test_the_protocol_knows_the_wire_only():
    assert graph()["conversations.protocol"] <= {"conversations.exceptions", "conversations.text"}
