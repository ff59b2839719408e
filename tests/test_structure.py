"""How the code is laid out: the commands at the root import the stackgan package, never the other way round, and
the package's modules import each other without a circle."""

import ast
import os

from helpers import REPO

PACKAGE = os.path.join(REPO, "stackgan")
ROOT_MODULES = {name[:-3] for name in os.listdir(REPO) if name.endswith(".py")}


def package_modules():
    """{dotted module name: path} of every module in stackgan/."""
    found = {}
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


def imports_of(path, module):
    """[(imported module name, line)] of every import statement in the file, at any depth (function bodies too)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.append((base, node.lineno))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def test_the_package_never_imports_a_root_module():
    assert {"models", "data", "stage1", "generate"} <= ROOT_MODULES  # the check below looks for real names
    offenders = [
        f"{os.path.relpath(path, REPO)}:{line} imports {name}"
        for module, path in package_modules().items()
        for name, line in imports_of(path, module)
        if name.split(".")[0] in ROOT_MODULES
    ]
    assert not offenders, offenders


def test_the_package_has_no_import_circle():
    modules = package_modules()
    graph = {
        module: {name for name, _ in imports_of(path, module) if name in modules and name != module}
        for module, path in modules.items()
    }
    for module in graph:  # a package's __init__ is imported on the way to its modules: not an edge back
        graph[module] = {m for m in graph[module] if not module.startswith(m + ".")}
    state, path = {}, []

    def visit(module):
        state[module] = "open"
        path.append(module)
        for nxt in sorted(graph[module]):
            if state.get(nxt) == "open":
                raise AssertionError("import circle: " + " -> ".join(path[path.index(nxt) :] + [nxt]))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
