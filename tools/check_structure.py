"""The tree's structure rules, checked by `make lint`: prints one line per problem and exits 1 if any.

1. No project module (anything but tests/) is over --module-lines-max lines.
2. No import circle between project modules. The graph comes from every `import` and `from ... import` in
   a module's syntax tree (deferred imports in functions and TYPE_CHECKING blocks included), and
   `from package import name` counts as importing `package.name` when that is a module.
3. No class in consensus/ has over --class-fields-max fields (distinct `self.x` assignments in its
   methods, annotated class attributes, dataclass fields) or over --class-methods-max methods defined in
   its body. ALLOWED_LARGE_CLASSES lists the known exceptions; an entry that is no longer needed is a
   problem too, so the list only shrinks.

    python tools/check_structure.py [--root DIR]
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

MODULE_LINES_MAX = 600
CLASS_FIELDS_MAX = 25
CLASS_METHODS_MAX = 40
SKIPPED_DIRS = frozenset({"tests", "build", "dist", "__pycache__", "node_modules"})
CLASS_RULE_PACKAGES = ("consensus",)

# "path::Class" -> why it is allowed for now. Empty since the replica was split into owned parts (issue 12);
# an entry that is no longer needed is reported, so the list only shrinks.
ALLOWED_LARGE_CLASSES: dict[str, str] = {}


@dataclass(frozen=True)
class Limits:
    module_lines_max: int = MODULE_LINES_MAX
    class_fields_max: int = CLASS_FIELDS_MAX
    class_methods_max: int = CLASS_METHODS_MAX


@dataclass(frozen=True)
class Module:
    name: str  # dotted: "node.sync", "core" for core/__init__.py
    path: Path  # relative to the root
    tree: ast.Module
    lines: int
    is_package: bool


def find_problems(root: Path, limits: Limits = Limits(), allowed: dict[str, str] | None = None) -> list[str]:
    """Every broken rule in the tree under `root`, one sentence each, in a stable order."""
    allowed = ALLOWED_LARGE_CLASSES if allowed is None else allowed
    modules = load_modules(root)
    problems = [
        f"{m.path}: {m.lines} lines, over the {limits.module_lines_max}-line limit for a module"
        for m in modules.values()
        if m.lines > limits.module_lines_max
    ]
    graph = build_import_graph(modules)
    problems += [f"import circle: {' -> '.join(cycle)}" for cycle in find_circles(graph)]
    problems += check_classes(modules, limits, allowed)
    return problems


# --- reading the tree -------------------------------------------------------------------------------------


def iter_source_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if any(part in SKIPPED_DIRS or part.startswith(".") or part.endswith(".egg-info") for part in parts):
            continue
        yield path


def load_modules(root: Path) -> dict[str, Module]:
    modules = {}
    for path in iter_source_files(root):
        relative = path.relative_to(root)
        parts = list(relative.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        if not parts:
            continue
        text = path.read_text(encoding="utf-8")
        name = ".".join(parts)
        modules[name] = Module(
            name, relative, ast.parse(text, str(relative)), len(text.splitlines()), is_package
        )
    return modules


# --- imports ----------------------------------------------------------------------------------------------


def build_import_graph(modules: dict[str, Module]) -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    graph: dict[str, set[str]] = {}
    for module in modules.values():
        targets: set[str] = set()
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    targets.update(_resolve(alias.name, modules))
            elif isinstance(node, ast.ImportFrom):
                base = _absolute_base(module, node)
                if base is None:
                    continue
                for alias in node.names:
                    submodule = f"{base}.{alias.name}" if base else alias.name
                    if submodule in modules:
                        targets.add(submodule)
                    else:
                        targets.update(_resolve(base, modules))
        targets.discard(module.name)
        graph[module.name] = targets
    return graph


def _absolute_base(module: Module, node: ast.ImportFrom) -> str | None:
    if node.level == 0:
        return node.module
    package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
    if node.level - 1 > len(package):
        return None
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, *([node.module] if node.module else [])])


def _resolve(name: str, modules: dict[str, Module]) -> set[str]:
    """The project module `import name` loads last: the longest prefix of `name` that is one of ours."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return {candidate}
    return set()


def find_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle (a -> b -> ... -> a) per group of modules that import each other, sorted."""
    circles = []
    for component in _strongly_connected(graph):
        if len(component) > 1:
            circles.append(_cycle_through(min(component), component, graph))
    return sorted(circles)


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (deep import chains must not hit the recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for successor in successors:
                if successor not in graph:
                    continue
                if successor not in index:
                    index[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    advanced = True
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _cycle_through(start: str, component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path start -> ... -> start inside one strongly connected group."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph[node] & component):
                if successor == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if successor not in previous:
                    previous[successor] = node
                    following.append(successor)
        frontier = following
    return [start, start]  # not reached: every member of a group lies on a circle


# --- consensus classes ------------------------------------------------------------------------------------


def check_classes(modules: dict[str, Module], limits: Limits, allowed: dict[str, str]) -> list[str]:
    problems = []
    seen_allowed = set()
    for module in modules.values():
        if module.name.split(".")[0] not in CLASS_RULE_PACKAGES:
            continue
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.ClassDef):
                continue
            key = f"{module.path.as_posix()}::{node.name}"
            fields, methods = count_fields(node), count_methods(node)
            too_big = []
            if len(fields) > limits.class_fields_max:
                too_big.append(f"{len(fields)} fields (limit {limits.class_fields_max})")
            if methods > limits.class_methods_max:
                too_big.append(f"{methods} methods (limit {limits.class_methods_max})")
            if key in allowed:
                seen_allowed.add(key)
                if not too_big:
                    problems.append(f"{key}: within the limits now; remove it from ALLOWED_LARGE_CLASSES")
            elif too_big:
                problems.append(f"{key}: class has {' and '.join(too_big)}")
    checked = {name.split(".")[0] for name in modules} & set(CLASS_RULE_PACKAGES)
    problems += [
        f"{key}: in ALLOWED_LARGE_CLASSES but no such class; remove the entry"
        for key in sorted(set(allowed) - seen_allowed)
        if key.split("/")[0] in checked
    ]
    return problems


def count_fields(cls: ast.ClassDef) -> set[str]:
    """Annotated class attributes (dataclass fields included) and every `self.x` a method assigns."""
    fields = {
        statement.target.id
        for statement in cls.body
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)
    }
    for method in cls.body:
        if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef) or not method.args.args:
            continue
        receiver = method.args.args[0].arg
        for node in _walk_skipping_classes(method):
            targets: Sequence[ast.expr] = ()
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign | ast.AugAssign):
                targets = (node.target,)
            for target in targets:
                fields.update(_self_attributes(target, receiver))
    return fields


def count_methods(cls: ast.ClassDef) -> int:
    return sum(1 for statement in cls.body if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef))


def _walk_skipping_classes(function: ast.AST) -> Iterator[ast.AST]:
    pending = list(ast.iter_child_nodes(function))
    while pending:
        node = pending.pop()
        if isinstance(node, ast.ClassDef):
            continue
        yield node
        pending.extend(ast.iter_child_nodes(node))


def _self_attributes(target: ast.expr, receiver: str) -> Iterator[str]:
    if isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _self_attributes(element, receiver)
    elif isinstance(target, ast.Starred):
        yield from _self_attributes(target.value, receiver)
    elif (
        isinstance(target, ast.Attribute)
        and isinstance(target.value, ast.Name)
        and target.value.id == receiver
    ):
        yield target.attr


# --- command line -----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--module-lines-max", type=int, default=MODULE_LINES_MAX)
    parser.add_argument("--class-fields-max", type=int, default=CLASS_FIELDS_MAX)
    parser.add_argument("--class-methods-max", type=int, default=CLASS_METHODS_MAX)
    args = parser.parse_args(argv)
    limits = Limits(args.module_lines_max, args.class_fields_max, args.class_methods_max)
    problems = find_problems(args.root, limits)
    for problem in problems:
        print(f"structure: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
