"""Code shape: no function or method in ``distillserve/`` is longer than 60 lines (decorators
excluded, docstring included). A long function is split into named steps before it lands."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import distillserve

MAX_FUNCTION_LINES = 60
PACKAGE = Path(distillserve.__file__).parent


def _functions(
    tree: ast.AST, prefix: str = ""
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function with its qualified name (``Class.method``, ``outer.inner``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + node.name, node
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def long_functions() -> dict[str, int]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE.parent).as_posix()
        for name, node in _functions(ast.parse(path.read_text(), filename=str(path))):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found[f"{module}::{name}"] = length
    return found


def test_no_function_is_longer_than_60_lines() -> None:
    offenders = long_functions()
    listing = "\n".join(f"  {name}: {n} lines" for name, n in sorted(offenders.items()))
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines:\n{listing}"
