"""The method is the unit (docs/design.md section 11): no code outside a built-in method's own files
names it, so a method is added or removed with its files alone.

Rules, exactly:

- Methods: every entry of the method catalog declared by a built-in trainer class (a module of
  ``cpt.trainers``); a method is named by its short name, its trainer name or its config node
  (``coop`` / ``CoOp`` / ``COOP``).
- Code: every ``.py`` and ``.sh`` file of the checkout except under ``tests/``, ``docs/``,
  ``configs/`` and what is not the project's (``build/``, ``*.egg-info``, hidden folders, caches);
  reference data (``scripts/paper_tables/*.csv``, yaml, json) is not code.
- A method's own files: ``trainers/<name>.py`` or ``trainers/<name>/``, and ``scripts/<name>/``. A
  method may name the methods it builds on: the files of method ``x`` may name ``m`` when ``x``'s
  trainer class derives from ``m``'s (KgCoOp from CoOp) or ``x``'s catalog entry searches ``m``'s
  config folder (``config_dirs``).
- :data:`RECIPES`: experiment recipes that run named methods on purpose (their results are about
  those methods, like the paper tables).
- What counts in Python: the identifiers (names, attributes, definitions, arguments, keywords,
  imported modules and names) and the string literals that are not docstrings (f-string parts
  included); comments and docstrings do not. In bash: the text of every line less its comment
  (a line starting with ``#``, or from an unquoted ``#`` after a blank on).
- A text names a method when one of its words is the method's short name, trainer name or config
  node, compared case-insensitively; a word is a maximal run of letters, digits and apostrophes, so
  ``_ . / - :`` and blanks separate words (``TRAINER.COOP.CSC``, ``build_coop_learner`` and
  ``scripts/coop/x.sh`` name ``coop``; ``KgCoOp`` does not name ``CoOp``, nor does the possessive
  ``CoOp's``, prose about the upstream work rather than a handle).
"""
import ast
import os
import re

from cpt import trainers  # noqa: F401  (registers the built-in trainers)
from cpt.cli import catalog
from cpt.engine.trainer import TRAINER_REGISTRY

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIP_DIRS = {"tests", "docs", "configs", "build", "__pycache__"}
RECIPES = {"scripts/demo.sh", "scripts/multilabel/render_world_study.sh"}
WORD = re.compile(r"[A-Za-z0-9']+")


def builtin_methods():
    """``[(Method, trainer class)]`` of the built-in methods."""
    out = []
    for _, m in catalog.METHODS.items():
        cls = TRAINER_REGISTRY.get(m.trainer)
        if cls.__module__.startswith("cpt.trainers."):
            out.append((m, cls))
    return out


def code_files():
    for d, dirs, files in os.walk(REPO):
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS and not x.startswith(".") and not x.endswith(".egg-info"))
        for f in sorted(files):
            if f.endswith((".py", ".sh")):
                yield os.path.relpath(os.path.join(d, f), REPO).replace(os.sep, "/")


def python_texts(source):
    """``(line, text)`` of the identifiers and non-docstring string literals of a module."""
    tree = ast.parse(source)
    docstrings = {id(n.value) for n in ast.walk(tree)
                  if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)}
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings:
            yield n.lineno, n.value
        elif isinstance(n, ast.Name):
            yield n.lineno, n.id
        elif isinstance(n, ast.Attribute):
            yield n.lineno, n.attr
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield n.lineno, n.name
        elif isinstance(n, ast.arg):
            yield n.lineno, n.arg
        elif isinstance(n, ast.keyword) and n.arg:
            yield n.lineno, n.arg
        elif isinstance(n, ast.alias):
            yield n.lineno, f"{n.name} {n.asname or ''}"
        elif isinstance(n, ast.ImportFrom) and n.module:
            yield n.lineno, n.module


def strip_bash_comment(line):
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def bash_texts(source):
    for i, line in enumerate(source.splitlines(), 1):
        yield i, strip_bash_comment(line)


def names(text, method, cls):
    return {method.name.lower(), method.trainer.lower(), cls.cfg_node.lower()} & {w.lower() for w in WORD.findall(text)}


def own_files(method):
    return (f"trainers/{method.name}.py", f"trainers/{method.name}/", f"scripts/{method.name}/")


def builders_of(method, cls, methods):
    """The methods whose files may name ``method``: those built on it."""
    return [x for x, xcls in methods
            if x.name != method.name and (issubclass(xcls, cls) or method.trainer in x.config_dirs)]


def offenders():
    methods = builtin_methods()
    texts = {}
    for path in code_files():
        with open(os.path.join(REPO, path), encoding="utf-8") as f:
            src = f.read()
        texts[path] = list(python_texts(src) if path.endswith(".py") else bash_texts(src))
    found = []
    for m, cls in methods:
        allowed = own_files(m) + tuple(p for x in builders_of(m, cls, methods) for p in own_files(x))
        for path, lines in texts.items():
            if path in RECIPES or path.startswith(allowed) or path in allowed:
                continue
            found += [f"{path}:{line}: {m.name}: {text[:80]!r}" for line, text in lines if names(text, m, cls)]
    return found


def test_the_builtin_methods_are_found():
    found = {(m.name, m.trainer, cls.cfg_node) for m, cls in builtin_methods()}
    assert {("coop", "CoOp", "COOP"), ("kgcoop", "KgCoOp", "KGCOOP"), ("taidpt", "TaIDPT", "TAIDPT"),
            ("zsclip", "ZeroshotCLIP", "ZSCLIP")} <= found and len(found) >= 6
    assert {p for p in code_files() if p.startswith(("trainers/", "cli/"))} >= {"trainers/base.py", "cli/catalog.py"}
    # the catalog reads the built-in entries from the source: the same as the classes' own
    assert catalog.builtin_entries() == {m.trainer: vars(cls)["catalog_entry"] for m, cls in builtin_methods()}


def test_the_rules_read_code_not_prose():
    coop = next((m, cls) for m, cls in builtin_methods() if m.name == "coop")
    src = '"""CoOp in a docstring."""\nx = 1  # coop in a comment\nkey = "TRAINER.COOP.CSC"\nbuild_coop_learner()\n' \
          'y = "KgCoOp"\nz = "CoOp\'s split"\n'
    hits = [line for line, text in python_texts(src) if names(text, *coop)]
    assert hits == [3, 4]
    sh = 'echo "#"  # coop here is a comment\nMETHOD=coop bash x.sh\n# coop\n'
    assert [line for line, text in bash_texts(sh) if names(text, *coop)] == [2]


def test_no_code_outside_a_method_names_it():
    found = offenders()
    assert found == [], "code outside the method's own files names it:\n" + "\n".join(found)


def test_the_method_scripts_are_generic():
    """The bash scripts of a method folder derive the method from the folder's name: the same code
    (comments aside) in every folder."""
    code = {}
    for m, _ in builtin_methods():
        folder = os.path.join(REPO, "scripts", m.name)
        for f in sorted(os.listdir(folder)):
            with open(os.path.join(folder, f), encoding="utf-8") as fh:
                text = "".join(strip_bash_comment(line) for line in fh.read().splitlines(True)).strip()
            code.setdefault(f.replace(f"_{m.name}", "_<method>"), set()).add(text)
    assert "base2new_train_<method>.sh" in code and "parse_all_results.sh" in code
    assert all(len(v) == 1 for v in code.values()), {k: v for k, v in code.items() if len(v) > 1}
