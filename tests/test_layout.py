"""The code layout: one module per stage with a pure `run`, layouts naming every output, no import cycles."""
import ast
import importlib
from pathlib import Path

import pytest

from flows.cli import STAGES
from synthgen.shards.keys import parse_sample_key, sample_key, shard_name
from synthgen.stages.layout import FOLDERS, EvalLayout, SyntheticLayout

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("synthgen", "flows", "tasks")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def type_checking_only(tree: ast.AST) -> set[ast.AST]:
    """The import nodes under `if TYPE_CHECKING:`: they never run, so they make no cycle."""
    blocks = [n for n in ast.walk(tree) if isinstance(n, ast.If) and ast.unparse(n.test).endswith("TYPE_CHECKING")]
    return {node for block in blocks for stmt in block.body for node in ast.walk(stmt)}


def imported(tree: ast.AST, package: str, modules: set[str]) -> set[str]:
    """Project modules a module imports anywhere in its text (lazy imports inside functions included)."""
    found, skipped = set(), type_checking_only(tree)
    for node in ast.walk(tree):
        if node in skipped:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found |= {name for name in names if name in modules}
    return found


def import_graph() -> dict[str, set[str]]:
    files = [p for package in PACKAGES for p in (REPO / package).rglob("*.py")]
    modules = {module_name(p): p for p in files}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = imported(ast.parse(path.read_text()), package, set(modules)) - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle():
    graph = import_graph()
    assert "flows.cli" in graph and "synthgen.stages.sample" in graph
    assert find_cycle(graph) is None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]


def test_the_cli_imports_no_stage_flow():
    graph = import_graph()
    assert not {dep for dep in graph["flows.cli"] if dep.startswith(("flows.", "tasks.", "synthgen.stages."))} - {
        "synthgen.stages.layout", "synthgen.stages", "flows.user_errors"}


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_every_stage_has_a_core_run_a_flow_and_known_folders(stage):
    core = importlib.import_module(f"synthgen.stages.{stage.name}")
    flow_module = importlib.import_module(f"flows.{stage.name}")
    assert callable(core.run) and hasattr(core, "Inputs")
    assert callable(getattr(flow_module, stage.flow or stage.name))
    assert set(stage.inputs) | {stage.out} <= set(FOLDERS)
    assert set(core.Inputs.__dataclass_fields__) == set(stage.inputs)


def test_shard_names_and_keys_are_built_and_parsed_in_one_place():
    assert shard_name(SyntheticLayout.PREFIX, 3) == "synthetic-000003.tar"
    key = sample_key(SyntheticLayout.PREFIX, 42)
    assert key == "synthetic-000000042" and parse_sample_key(SyntheticLayout.PREFIX, key) == 42
    with pytest.raises(ValueError):
        parse_sample_key(SyntheticLayout.PREFIX, "train-000000042")


def test_a_layout_names_files_inside_its_folder():
    layout = EvalLayout(Path("releases/2026-01-01"))
    assert layout.gate == Path("releases/2026-01-01/gate.json")
    assert layout.plot("nn_distances") == Path("releases/2026-01-01/plots/nn_distances.csv")
