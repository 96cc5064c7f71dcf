"""The layers of docs/design.md section 1, read from the code without importing it.

An AST pass resolves every import of the package's modules (relative ones by folder; absolute
``cpt.<folder>`` ones by name) to a layer folder and checks that imports run only downwards:
calibration at the bottom, then the engine, then the CLIP adapter and the datasets, the trainers,
and the command line on top; no cycle between folders. ``python tests/test_layers.py`` prints the
graph (folder -> folders it imports, with the number of import statements).
"""
import ast
import os
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# folder (a path under the checkout root) -> layer; a module belongs to the longest folder holding it
LAYERS = {"calibration": 0, "engine": 1, "trainers/clip": 2, "datasets": 2, "trainers": 3, "cli": 4, "cli/results": 5}


def folder_of(relpath):
    """The layer folder of a path under the root (``trainers/clip/backbone.py`` -> ``trainers/clip``)."""
    best = None
    for f in LAYERS:
        if relpath == f or relpath.startswith(f + "/") or relpath.startswith(f + "."):
            if best is None or len(f) > len(best):
                best = f
    return best


def _target(path, node):
    """The path under the root (without ``.py``) that an import statement names, or None."""
    if isinstance(node, ast.ImportFrom) and node.level:
        base = os.path.dirname(os.path.relpath(path, ROOT)).split(os.sep)
        base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
        return "/".join([p for p in base if p] + (node.module.split(".") if node.module else []))
    names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
    for name in names:
        if name and name.startswith("cpt."):
            return name[4:].replace(".", "/")
    return None


def import_graph():
    """``{(from folder, to folder): count}`` over the package's modules."""
    edges = defaultdict(int)
    for top in {f.split("/")[0] for f in LAYERS}:
        for d, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if not f.endswith(".py"):
                    continue
                path = os.path.join(d, f)
                src = folder_of(os.path.relpath(path, ROOT))
                with open(path, encoding="utf-8") as fh:
                    tree = ast.parse(fh.read(), path)
                for node in ast.walk(tree):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        target = _target(path, node)
                        dst = folder_of(target) if target is not None else None
                        if isinstance(node, ast.ImportFrom) and node.module is None and target is not None:
                            # ``from .. import datasets``: the names are the folders
                            for a in node.names:
                                sub = folder_of("/".join(filter(None, [target, a.name])))
                                if sub and sub != src:
                                    edges[(src, sub)] += 1
                            continue
                        if dst and dst != src:
                            edges[(src, dst)] += 1
    return dict(edges)


def _cycles(edges):
    graph = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    seen, stack, found = set(), [], []

    def visit(n):
        if n in stack:
            found.append(stack[stack.index(n):] + [n])
            return
        if n in seen:
            return
        seen.add(n)
        stack.append(n)
        for m in sorted(graph[n]):
            visit(m)
        stack.pop()

    for n in sorted(graph):
        visit(n)
    return found


def test_imports_run_down_the_layers():
    edges = import_graph()
    up = sorted(f"{a} -> {b}" for a, b in edges if LAYERS[a] <= LAYERS[b])
    assert up == [], "imports that do not run down the layers: " + "; ".join(up)
    assert _cycles(edges) == []
    # the layers are tied: every layer above the bottom imports the one it stands on
    assert {("engine", "calibration"), ("trainers", "engine"), ("datasets", "engine"),
            ("trainers", "trainers/clip"), ("cli", "engine"), ("cli", "trainers")} <= set(edges)


def test_a_layer_folder_has_one_name():
    """Imported under its bare folder name, a layer fails with one line naming the package name."""
    import subprocess

    for code, expect in (("import engine.faults, cpt.engine.faults", "import cpt.engine"),):
        r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 1 and r.stderr.strip().splitlines()[-1] == (
            f"ImportError: {expect} (python -m cpt.engine.<module>), not engine")
    r = subprocess.run([sys.executable, "-m", "datasets.check"], cwd=ROOT, capture_output=True, text=True)
    assert r.stderr.strip().splitlines() == [
        f"{sys.executable}: Error while finding module specification for 'datasets.check' (ImportError: import "
        "cpt.datasets (python -m cpt.datasets.<module>), not datasets)"]


if __name__ == "__main__":
    by_layer = sorted(LAYERS, key=lambda f: (-LAYERS[f], f))
    graph = import_graph()
    for f in by_layer:
        outs = sorted((b for a, b in graph if a == f), key=lambda b: (-LAYERS[b], b))
        print(f"{LAYERS[f]}  {f:<14} -> " + (", ".join(f"{b} ({graph[(f, b)]})" for b in outs) or "-"))
