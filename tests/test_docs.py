"""The documentation names only things that exist: README.md and docs/*.md against the checkout.

What counts as a reference (read from the markdown text, nothing imported):

- **Links** ``[text](target)`` that are not URLs (``http:``, ``https:``, ``mailto:``): the target is
  resolved relative to the markdown file's folder, as GitHub does, and must exist; a ``#anchor``
  must be the slug of a heading of the target file (GitHub's rule: lower case, punctuation other
  than ``-`` and ``_`` dropped, spaces to ``-``).
- **Repository paths**: a word in a backticked span or a fenced code block whose first component
  is a top-level folder of the project (``calibration/``, ``engine/``, ``trainers/``, ``datasets/``,
  ``cli/``, ``cpt/``, ``configs/``, ``scripts/``, ``benchmarks/``, ``tests/``, ``docs/``,
  ``dassl_patches/``, ``.ci/``) is a path from the checkout root and must exist. A ``:<line>`` or
  ``:<name>`` suffix is dropped; ``a.{pt,json}`` stands for both files.
- **Bare file names** in a backticked span (no ``/``; ending in ``.py``, ``.sh``, ``.md``, ``.yaml``
  or ``.toml``) must be the name of some file of the checkout
  (``run.py`` next to ``cli/`` is ``cli/run.py``). Names in fenced code blocks are not checked
  this way (a code block may name a file the reader writes, e.g. ``grid.yaml``).
- **Module names** ``cpt.<folder>[.<module>...][.<attribute>]`` anywhere in a span or a code block:
  the longest prefix that is a package folder (namespace folders such as ``configs/`` count) or a
  module file must reach at least ``cpt.<folder>``;
  a remaining first part must be defined (``def``, ``class`` or an assignment) in that module.

Skipped: URLs; words holding a placeholder or glob (``<...>``, ``*``, ``...``, ``$``, ``~``,
``%``); output paths (``output/...``, under the git-ignored output root); paths inside ``$DATA``
(dataset layouts start with a dataset folder, never with a project folder; their ``.txt``, ``.json``
and ``.mat`` names are not bare names); the handful of paths in the upstream forks and of the
docs' examples of a user's own files that ``FOREIGN`` lists (they start with a project folder name).
Names listed in ``RENAMED`` (the old names the docs give for a module that moved) are skipped, and
must not exist any more. README.md must stay under 300 lines: it is the starting point, the rest lives in docs/.
"""
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP = ("calibration", "engine", "trainers", "datasets", "cli", "cpt", "configs", "scripts", "benchmarks",
       "tests", "docs", "dassl_patches", ".ci")
BARE_EXT = (".py", ".sh", ".md", ".yaml", ".toml")
# Paths that are not this project's: the upstream forks' files, quoted where the docs compare with
# them, and the files the docs' examples ask a user to create.
FOREIGN = {
    "trainers/Caption_distill_double.py",  # TaI-DPT's fork
    "configs/trainers/ToyCoOp",  # the plugin method's config folder in "A method of your own"
}

# Old names the docs list as renamed ("`cpt.catalog` is `cpt.cli.catalog`"): gone from the checkout.
RENAMED = {"cpt.catalog", "cpt.plugins", "cpt.registry", "cpt.fileio", "trainers/world_clip.py"}


def doc_files():
    return [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))


def _all_basenames():
    names = set()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel = os.path.relpath(dirpath, ROOT)
        if rel != "." and rel.split(os.sep)[0] in {".git", ".venv", "build", "output", "__pycache__"}:
            dirnames[:] = []
            continue
        dirnames[:] = [d for d in dirnames if not d.endswith(".egg-info") and d != "__pycache__"]
        names.update(filenames)
    return names


def split_markdown(text):
    """(prose lines with code blocks blanked, code-block lines), both as (line number, line)."""
    prose, code, fence = [], [], None
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"\s*(```|~~~)", line)
        if m:
            fence = None if fence == m.group(1) else (fence or m.group(1))
            continue
        (code if fence else prose).append((n, line))
    return prose, code


def slug(heading):
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return s.replace(" ", "-")


def anchors(path):
    with open(path, encoding="utf-8") as f:
        prose, _ = split_markdown(f.read())
    return {slug(re.sub(r"^#+\s*", "", line)) for _, line in prose if re.match(r"#+\s", line)}


def _skip(word):
    return (not word or "://" in word or any(c in word for c in "<>*$~%") or "..." in word
            or word.startswith("output/"))


def _expand(word):
    m = re.match(r"^(.*)\{([^{}]*)\}(.*)$", word)
    if not m:
        return [word]
    return [m.group(1) + alt + m.group(3) for alt in m.group(2).split(",")]


def _words(span):
    for w in re.split(r"[\s=;()\"'`\[\]]+|,(?![^{}]*\})", span):
        w = w.strip(".:,")
        if w:
            yield w


def repo_path_problems(word):
    """Problems with one word that names a project path (none if it names no path)."""
    if _skip(word) or word.split("/")[0] not in TOP or "/" not in word or word in RENAMED:
        return []
    out = []
    for path in _expand(word):
        path = path.split(":")[0].rstrip("/")
        if path in FOREIGN:
            continue
        if not os.path.exists(os.path.join(ROOT, path)):
            out.append(f"no such path: {path}")
    return out


def bare_name_problems(word, basenames):
    if _skip(word) or "/" in word or not word.endswith(BARE_EXT):
        return []
    if not re.fullmatch(r"[A-Za-z0-9_.\-{},]+", word):
        return []
    return [f"no file named {name}" for name in _expand(word) if name not in basenames]


def module_problems(span):
    out = []
    for name in re.findall(r"(?<![\w./])cpt(?:\.[A-Za-z_]\w*)+", span):
        if name in RENAMED:
            continue
        parts = name.split(".")[1:]
        found, kind = 0, None
        for i in range(1, len(parts) + 1):
            base = os.path.join(ROOT, *parts[:i])
            if os.path.isdir(base):
                found, kind = i, os.path.join(base, "__init__.py")
            elif os.path.isfile(base + ".py"):
                found, kind = i, base + ".py"
            else:
                break
        if found == 0:
            out.append(f"no module {name}")
            continue
        rest = parts[found:]
        if rest and os.path.isfile(kind):
            with open(kind, encoding="utf-8") as f:
                src = f.read()
            attr = re.escape(rest[0])
            if not re.search(rf"^\s*(def|class)\s+{attr}\b|^\s*{attr}\s*[:=]|import .*\b{attr}\b", src, re.M):
                out.append(f"{name}: {'.'.join(['cpt'] + parts[:found])} defines no {rest[0]}")
    return out


def link_problems(doc, line):
    out = []
    for target in re.findall(r"\]\(([^)\s]+)\)", line):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
        if not os.path.exists(full):
            out.append(f"broken link: {target}")
        elif anchor and full.endswith(".md") and anchor not in anchors(full):
            out.append(f"no heading for #{anchor} in {os.path.relpath(full, ROOT)}")
    return out


def problems(doc):
    with open(doc, encoding="utf-8") as f:
        prose, code = split_markdown(f.read())
    basenames = _all_basenames()
    found = []
    for n, line in prose:
        found += [(n, p) for p in link_problems(doc, line)]
        for span in re.findall(r"`([^`]+)`", line):
            for w in _words(span):
                found += [(n, p) for p in repo_path_problems(w) + bare_name_problems(w, basenames)]
            found += [(n, p) for p in module_problems(span)]
    for n, line in code:
        for w in _words(line.split(" #")[0]):
            found += [(n, p) for p in repo_path_problems(w)]
        found += [(n, p) for p in module_problems(line)]
    return sorted(set(found))


def test_docs_name_existing_paths():
    report = []
    for doc in doc_files():
        for n, p in problems(doc):
            report.append(f"{os.path.relpath(doc, ROOT)}:{n}: {p}")
    assert not report, "\n".join(report)


def test_renamed_names_are_gone():
    for name in RENAMED:
        path = name[len("cpt."):].replace(".", "/") if name.startswith("cpt.") else name
        assert not os.path.exists(os.path.join(ROOT, path if path.endswith(".py") else path + ".py")), name
        assert not os.path.isdir(os.path.join(ROOT, path)), name


def test_readme_is_short():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        n = len(f.read().splitlines())
    assert n < 300, f"README.md has {n} lines; move details to docs/"


def test_rules_catch_stale_names(tmp_path):
    """The extraction rules themselves: what is checked and what is skipped."""
    doc = tmp_path / "x.md"
    doc.write_text(
        "See `trainers/clip.py`, `datasets/world.py` and `cpt.nothing`; [d](missing.md).\n"
        "Fine: `trainers/base.py`, `configs/trainers/CoOp/`, `scripts/<method>/*.sh`, `output/a/b.json`,\n"
        "`$DATA/imagenet`, `imagenet/classnames.txt`, `cpt.cli.catalog`, `run.py`, "
        "`trainers/weights/world_tiny.{pt,json}`, `https://x.org/a.py`.\n"
        "```bash\npython scripts/sweep.py --grid grid.yaml\npython scripts/nothing.py\n```\n",
        encoding="utf-8")
    got = [p for _, p in problems(str(doc))]
    assert sorted(got) == sorted(["no such path: trainers/clip.py", "no such path: datasets/world.py",
                                  "no module cpt.nothing", "broken link: missing.md",
                                  "no such path: scripts/nothing.py"]), got
