"""The architecture's one hard rule: ``tools/`` never imports ``agent/`` (tools serve any agent)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_tools_never_import_agent():
    files = sorted((ROOT / "tools").rglob("*.py"))
    assert files
    offenders = {str(f.relative_to(ROOT)): sorted(n for n in _imports(f) if n == "agent" or n.startswith("agent."))
                 for f in files}
    assert {f: names for f, names in offenders.items() if names} == {}
