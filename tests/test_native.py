"""The compiled core (`sim.core.native`, setup.py): what mypyc needs from the source, checked on the source.

mypyc turns each class of a compiled module into a C type. Python code may then subclass it only if the class is
marked `mypyc_attr(allow_interpreted_subclasses=True)`; without the marker the compiled build fails at import
("interpreted classes cannot inherit from compiled") or, for a subclass in the tests, at collection.
These checks read the source, so they hold on a pure-Python checkout too (`SERVESIM_PURE=1`, or no C compiler): a
new subclass of a compiled class, outside the compiled modules, fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

from sim.core.native import COMPILED, mypyc_attr

ROOT = Path(__file__).resolve().parent.parent


def _classes(path: Path) -> dict[str, ast.ClassDef]:
    return {n.name: n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)}


def _marked(cls: ast.ClassDef, attr: str) -> bool:
    for d in cls.decorator_list:
        if not (isinstance(d, ast.Call) and getattr(d.func, "id", None) == "mypyc_attr"):
            continue
        if any(k.arg == attr and isinstance(k.value, ast.Constant) and k.value.value for k in d.keywords):
            return True
    return False


def _base_names(cls: ast.ClassDef) -> set[str]:
    return {b.id if isinstance(b, ast.Name) else b.attr for b in cls.bases if isinstance(b, ast.Name | ast.Attribute)}


def test_compiled_modules_exist_and_define_no_pydantic_models() -> None:
    for rel in COMPILED:
        src = (ROOT / rel).read_text()
        assert "BaseModel" not in src, f"{rel}: mypyc cannot compile a pydantic model (keep configs in another module)"


def test_every_compiled_class_that_python_code_extends_allows_it() -> None:
    compiled = {p: _classes(ROOT / p) for p in COMPILED}
    native = {  # name -> (module, class) for the native classes (a non-native class may be extended freely)
        name: (rel, cls)
        for rel, classes in compiled.items()
        for name, cls in classes.items()
        if not _marked(cls, "native_class") and not any(getattr(b, "id", "") == "Protocol" for b in cls.bases)
    }
    sources = [p for d in ("sim", "policies", "tests", "calibrate", "queueing") for p in (ROOT / d).rglob("*.py")]
    missing = []
    for path in sources:
        rel = str(path.relative_to(ROOT))
        for cls in _classes(path).values():
            for base in _base_names(cls) & native.keys():
                home, base_cls = native[base]
                if rel in COMPILED and base in compiled[rel]:
                    continue  # a native subclass in the same compiled module
                if not _marked(base_cls, "allow_interpreted_subclasses"):
                    missing.append(f"{rel}: {cls.name}({base}) but {home}'s {base} is not marked")
    assert not missing, missing


def test_the_marker_is_inert_in_pure_python() -> None:
    class A:
        x = 1

    assert mypyc_attr(allow_interpreted_subclasses=True)(A) is A
