"""Each DVC stage's code deps are the project files its command imports, found from the code.

A stage `<stage>` runs `synthgen <command> ...`: the console script's module (the CLI, from
pyproject.toml) and the stage's flow `flows/<stage>.py`. Its code deps are the transitive closure
of project imports from those two modules, read statically from the AST, each package
`__init__.py` on the way included. The CLI's function bodies are its commands, each run only by
its own command, so only its module level is followed; the stage's command reaches its flow by
name, which is the second entry. Imports built at run time (`importlib.import_module(name)`) are
not followed, and neither are `if __name__ == "__main__":` and `if TYPE_CHECKING:` blocks.

    python tools/dvc_deps.py --check   # exit 1 naming each stage's missing and extra files
    python tools/dvc_deps.py --write   # rewrite the code deps of every stage in dvc.yaml
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
FLOWS = "flows"


@dataclass(frozen=True)
class Project:
    """Where the project's modules are: its root, its top-level packages and its CLI module."""

    root: Path
    packages: frozenset[str]
    cli: str

    @classmethod
    def from_pyproject(cls, root: Path) -> Project:
        meta = tomllib.loads((root / "pyproject.toml").read_text())
        patterns = meta["tool"]["setuptools"]["packages"]["find"]["include"]
        packages = frozenset(p.rstrip("*").rstrip(".") for p in patterns)
        scripts = meta["project"]["scripts"]
        if len(scripts) != 1:
            raise ValueError(f"pyproject.toml: expected one console script (the stage commands), got {sorted(scripts)}")
        (entry,) = scripts.values()
        return cls(root, packages, entry.split(":")[0])

    def file_of(self, module: str) -> Path | None:
        """The source file of a project module (a package's `__init__.py`), or None."""
        base = self.root.joinpath(*module.split("."))
        for path in (base / "__init__.py", base.with_suffix(".py")):
            if path.is_file():
                return path
        return None

    def is_project(self, module: str) -> bool:
        return module.split(".")[0] in self.packages


def parents_and_self(module: str) -> list[str]:
    """`a.b.c` -> [a, a.b, a.b.c]: importing a module runs every package `__init__` above it first."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


NEVER_ON_IMPORT = {"__name__ == '__main__'", "TYPE_CHECKING", "typing.TYPE_CHECKING"}


def runs_on_import(node: ast.If) -> bool:
    """False for the bodies of `if __name__ == "__main__":` and `if TYPE_CHECKING:`."""
    return ast.unparse(node.test) not in NEVER_ON_IMPORT


def import_nodes(tree: ast.AST, module_level_only: bool) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: module level, and inside functions unless told not to."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
            continue
        if module_level_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and not runs_on_import(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return found


def imported_modules(project: Project, module: str, module_level_only: bool = False) -> set[str]:
    """Project modules that `module` imports (submodules named by `from pkg import name` included)."""
    path = project.file_of(module)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in import_nodes(ast.parse(path.read_text(), str(path)), module_level_only):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.rsplit(".", node.level - 1)[0]
            base = f"{anchor}.{node.module}" if node.module else anchor
        if not project.is_project(base):
            continue
        found.add(base)
        found.update(f"{base}.{alias.name}" for alias in node.names
                     if alias.name != "*" and project.file_of(f"{base}.{alias.name}"))
    return {m for m in found if project.is_project(m)}


def closure(project: Project, entries: list[str]) -> list[str]:
    """Sorted repo-relative files of `entries` and every project module they import, transitively."""
    seen: set[str] = set()
    todo = [m for entry in entries for m in parents_and_self(entry)]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        if project.file_of(module) is None:
            raise ImportError(f"{module} is imported but has no file under {project.root}")
        seen.add(module)
        for imported in imported_modules(project, module, module_level_only=module == project.cli):
            todo.extend(parents_and_self(imported))
    return sorted(project.file_of(m).relative_to(project.root).as_posix() for m in seen)


def stage_code_deps(project: Project, stage: str) -> list[str]:
    """The code deps of DVC stage `stage`: what `synthgen <command>` imports to run `flows/<stage>.py`."""
    flow = f"{FLOWS}.{stage}"
    if project.file_of(flow) is None:
        raise FileNotFoundError(f"stage {stage}: no flow module {flow}")
    return closure(project, [project.cli, flow])


def is_code_dep(project: Project, dep: str) -> bool:
    return dep.split("/")[0] in project.packages


def declared_deps(project: Project) -> dict[str, list[str]]:
    """Each stage's code deps as dvc.yaml declares them."""
    stages = yaml.safe_load((project.root / "dvc.yaml").read_text())["stages"]
    return {name: [d for d in stage.get("deps") or [] if is_code_dep(project, d)] for name, stage in stages.items()}


def problems(project: Project) -> list[str]:
    """One line per stage dep that dvc.yaml misses or has beyond what the stage runs."""
    lines = []
    for stage, declared in declared_deps(project).items():
        wanted = stage_code_deps(project, stage)
        covered = {f for f in wanted for d in declared if f == d or f.startswith(d.rstrip("/") + "/")}
        lines += [f"{stage}: missing {f}" for f in wanted if f not in covered]
        lines += [f"{stage}: extra {d}" + ("" if (project.root / d).is_file() else " (list files, not folders)")
                  for d in declared if d not in wanted]
    return lines


DEP_ITEM = re.compile(r"^(?P<indent>\s*)- (?P<dep>[^\s#]+)\s*(#.*)?$")


def rewrite_stage_deps(project: Project, text: str, stage: str, deps: list[str]) -> str:
    """`text` with the code items of `stage`'s deps list replaced by `deps`; everything else kept."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if re.match(rf"^  {re.escape(stage)}:\s*(#.*)?$", line))
    stage_end = next((i for i in range(start + 1, len(lines)) if re.match(r"^ {0,2}\S", lines[i])), len(lines))
    deps_at = next((i for i in range(start + 1, stage_end) if re.match(r"^    deps:\s*(#.*)?$", lines[i])), None)
    if deps_at is None:
        raise ValueError(f"stage {stage} has no `deps:` list in dvc.yaml; add one")
    end = deps_at + 1
    while end < len(lines) and (DEP_ITEM.match(lines[end]) or lines[end].strip().startswith("#")):
        end += 1
    items = lines[deps_at + 1:end]
    code_at = [i for i, line in enumerate(items) if (m := DEP_ITEM.match(line)) and is_code_dep(project, m["dep"])]
    insert_at = code_at[0] if code_at else len(items)
    indent = DEP_ITEM.match(items[0])["indent"] if items else "      "
    new_items = [line for i, line in enumerate(items) if i not in code_at]
    new_items[insert_at:insert_at] = [f"{indent}- {dep}\n" for dep in deps]
    return "".join(lines[:deps_at + 1] + new_items + lines[end:])


def write(project: Project) -> None:
    path = project.root / "dvc.yaml"
    text = path.read_text()
    for stage in declared_deps(project):
        text = rewrite_stage_deps(project, text, stage, stage_code_deps(project, stage))
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="Exit 1 when a stage's code deps differ from its imports.")
    action.add_argument("--write", action="store_true", help="Rewrite the code deps of every stage in dvc.yaml.")
    parser.add_argument("--root", type=Path, default=REPO, help="Project root (holds pyproject.toml and dvc.yaml).")
    args = parser.parse_args(argv)
    project = Project.from_pyproject(args.root)
    if args.write:
        write(project)
        return 0
    found = problems(project)
    for line in found:
        print(line)
    if found:
        print("run `python tools/dvc_deps.py --write` to fix dvc.yaml", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
