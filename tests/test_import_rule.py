"""The import rule: train/, eval/ and demo/ are recipes that import only ``uniemo`` and third-party packages; no
recipe imports another one, and ``uniemo`` imports none of them (demo/ may import its own modules, app.py the
demo). Every import of every file is read with ``ast``, at module level and inside functions alike, together
with ``importlib.import_module("...")`` / ``__import__("...")`` calls on a literal name."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("train", "eval", "demo")
RULED = ("uniemo", *RECIPES)

def _files() -> list[Path]:
    return sorted(p for d in RULED for p in (ROOT / d).rglob("*.py")) + [ROOT / "app.py"]


def _module_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = ROOT) -> list[str]:
    """Every module (or module.name) ``path`` imports, absolute (relative imports resolved against its package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = _module_of(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)] if package else []
                source = ".".join([*base, *([node.module] if node.module else [])])
            # ``from train import joint`` is train.joint: each imported name, under the module it comes from
            found += [f"{source}.{alias.name}" for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__")))):
            found.append(node.args[0].value)
    return found


def breaches(path: Path, root: Path = ROOT) -> list[str]:
    """The modules ``path`` may not import: a recipe (its own folder's scripts included) or app."""
    rel = path.relative_to(root).as_posix()
    home = rel.split("/")[0] if "/" in rel else None  # train, eval, demo, uniemo; None for app.py
    # run as a script, a recipe's own folder is on sys.path: a bare ``import score`` is the sibling script
    siblings = {p.stem for p in path.parent.glob("*.py")} - {"__init__"} if home in RECIPES else set()
    out = []
    for module in imported_modules(path, root):
        top = module.split(".")[0]
        recipe = top in (*RECIPES, "app") or top in siblings
        # the demo is one recipe of several modules; app.py serves it
        allowed = top == "demo" or top in siblings if home == "demo" else home is None and top == "demo"
        if recipe and not allowed:
            out.append(module)
    return out


def test_recipes_import_only_the_library_and_the_library_no_recipe():
    found = sorted((path.relative_to(ROOT).as_posix(), module) for path in _files() for module in breaches(path))
    assert not found, "imports that break the rule (move the shared code into uniemo/):\n" + "\n".join(
        f"  {file}: {module}" for file, module in found)


def test_the_rule_sees_nested_relative_and_dynamic_imports(tmp_path):
    """The checker itself: imports inside functions, relative imports and import_module calls all count."""
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "score.py").write_text("")
    script = tmp_path / "eval" / "report.py"
    script.write_text("import json\nfrom uniemo import metrics\n\ndef main():\n    from train import joint\n"
                      "    from . import score\n    import score\n    import importlib\n"
                      "    importlib.import_module('demo.handlers')\n")
    assert breaches(script, tmp_path) == ["train.joint", "eval.score", "score", "demo.handlers"]
    library = tmp_path / "uniemo" / "x.py"
    library.parent.mkdir()
    library.write_text("def f():\n    from eval.score import main\n")
    assert breaches(library, tmp_path) == ["eval.score.main"]
    demo = tmp_path / "demo" / "ui.py"
    demo.parent.mkdir()
    demo.write_text("from demo import handlers\nfrom eval import benchmark\n")
    assert breaches(demo, tmp_path) == ["eval.benchmark"]
    app = tmp_path / "app.py"
    app.write_text("from demo.ui import build_demo\nimport train.joint\n")
    assert breaches(app, tmp_path) == ["train.joint"]
