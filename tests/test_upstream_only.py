"""Every call to the Dedalus API goes through conversations/upstream/: no other module imports the SDK."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("conversations", "chatproject")
UPSTREAM = ROOT / "conversations" / "upstream"
SDK = "dedalus_labs"


def sdk_imports(path: Path) -> list[str]:
    """The imports of the SDK (or of a module of it) in one file, as `line: module`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [f"{node.lineno}: {name}" for name in names if name.partition(".")[0] == SDK]
    return found


def test_only_the_upstream_package_imports_the_sdk():
    offenders = {
        str(path.relative_to(ROOT)): imports
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if not path.is_relative_to(UPSTREAM)
        if (imports := sdk_imports(path))
    }
    assert offenders == {}


def test_the_upstream_package_does_import_it():
    """The walk above sees the package's own imports: it would not pass by reading nothing."""
    assert any(sdk_imports(path) for path in UPSTREAM.rglob("*.py"))
