"""The package layout (docs/ARCHITECTURE.md): the library never imports the command layer, no import cycles, the
old module paths still work with a DeprecationWarning, and pyproject.toml lists every package."""

import ast
import importlib
import sys
import warnings
from pathlib import Path

import pytest
import tomllib


ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hf_eagle31"
# The command layer: argument parsing, printing and process lifecycle. Nothing else imports it.
COMMAND_LAYER = ("hf_eagle31.commands", "hf_eagle31.cli")
# Old paths kept for one release (each warns); the library itself never imports them.
DEPRECATED = {
    "hf_eagle31.bench": "hf_eagle31.evaluation.bench",
    "hf_eagle31.calibration": "hf_eagle31.evaluation.calibration",
    "hf_eagle31.drift": "hf_eagle31.evaluation.drift",
    "hf_eagle31.suites": "hf_eagle31.data.suites",
    "hf_eagle31.draft_vocab": "hf_eagle31.training.draft_vocab",
    "hf_eagle31.sources": None,  # split: hf_eagle31.assets + hf_eagle31.data.conversations
    "hf_eagle31.cli_utils": None,  # split: hf_eagle31.commands.common + hf_eagle31.evaluation.timing
    "hf_eagle31.demo": None,  # DEFAULT_DRAFTER / SHIPPED_DRAFTERS: hf_eagle31.loading
}


def _module_name(path: Path) -> str:
    if path.is_relative_to(ROOT / "modeling"):
        parts = ["hf_eagle31", "modeling", *path.relative_to(ROOT / "modeling").with_suffix("").parts]
    else:
        parts = ["hf_eagle31", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict:
    files = [p for p in PACKAGE.rglob("*.py") if "drafters" not in p.relative_to(PACKAGE).parts]
    files += sorted((ROOT / "modeling").glob("*.py"))
    return {_module_name(p): p for p in files}


def import_graph() -> dict:
    """{module: modules it imports (at the top or inside functions), within hf_eagle31}."""
    sources = _sources()
    graph = {}
    for name, path in sources.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # `from pkg import sub` imports the submodule `pkg.sub` when there is one
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in sources else base for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t.split(".")[0] == "hf_eagle31" and t != name}
        graph[name] = edges
    return graph


def test_the_library_never_imports_the_command_layer():
    graph = import_graph()
    library = {m for m in graph if not m.startswith(COMMAND_LAYER) and m != "hf_eagle31.cli_utils"}
    offenders = {m: sorted(e for e in graph[m] if e.startswith(COMMAND_LAYER)) for m in library}
    assert not {m: e for m, e in offenders.items() if e}, "library modules import hf_eagle31.commands"


def test_the_package_never_imports_its_deprecated_paths():
    graph = import_graph()
    offenders = {m: sorted(e & set(DEPRECATED)) for m, e in graph.items() if m not in DEPRECATED}
    assert not {m: e for m, e in offenders.items() if e}


def test_no_import_cycles():
    graph = import_graph()
    state = {}  # module -> "open" while on the DFS stack, "done" after

    def visit(module, stack):
        state[module] = "open"
        for dep in sorted(graph.get(module, ())):
            if state.get(dep) == "open":
                cycle = stack[stack.index(dep) :] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, stack + [dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("old", sorted(DEPRECATED))
def test_old_module_paths_warn_and_work(old):
    saved = sys.modules.pop(old, None)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(old)
        assert any(issubclass(w.category, DeprecationWarning) for w in caught), old
        if DEPRECATED[old]:
            assert module is importlib.import_module(DEPRECATED[old])  # an alias: monkeypatches reach the code
    finally:
        sys.modules.pop(old, None)
        if saved is not None:
            sys.modules[old] = saved


def test_moved_names_warn_and_work():
    from hf_eagle31 import evaluation, loading, training

    for package, name in [
        (evaluation, "load_drafter"),
        (evaluation, "native_bf16"),
        (training, "load_drafter_checkpoint"),
    ]:
        with pytest.warns(DeprecationWarning, match="hf_eagle31.loading"):
            assert getattr(package, name) is getattr(loading, name)


# The public names training/trainer.py defined before it was split by concern: each still resolves there (a name that
# moved warns, naming its new module, and is that module's object).
TRAINER_NAMES_BEFORE_THE_SPLIT = [
    "DEFAULT_TTT_STEPS",
    "DrafterDataCollator",
    "TRAINER_STATE",
    "FINAL_MODEL_FILES",
    "FINAL_WEIGHTS",
    "FINAL_PARTIAL",
    "checkpoint_dirs",
    "is_complete_checkpoint",
    "has_final_weights",
    "check_finite",
    "resolve_resume_checkpoint",
    "check_training_outputs",
    "save_final",
    "check_max_minutes",
    "TrainingTimeBudget",
    "unwrap_drafter",
    "EagleTrainer",
    "build_drafter",
    "build_drafter_config",
    "apply_lora",
    "load_lora",
    "merge_lora",
    "estimate_step_memory",
    "check_has_loss_tokens",
    "check_ttt_steps",
    "build_drafter_like",
    "target_text_config_for_features",
    "load_target_for_features",
    "precompute_training_features",
    "train_drafter",
]


@pytest.mark.parametrize("name", TRAINER_NAMES_BEFORE_THE_SPLIT)
def test_names_that_left_training_trainer_still_import_from_there(name):
    from hf_eagle31.training import trainer

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = getattr(trainer, name)
    moved = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    if name in vars(trainer):  # still imported there for its own use: a plain attribute
        assert not moved
        return
    assert len(moved) == 1 and f"hf_eagle31.training.trainer.{name} moved to " in moved[0]
    new_module = moved[0].split(" moved to ")[1].split(";")[0].rsplit(".", 1)[0]
    assert getattr(importlib.import_module(new_module), name) is value


def test_training_rooms_import_downwards():
    """docs/ARCHITECTURE.md, rule 5: inside training/, the modules beside the Trainer import none of `trainer`,
    `arguments`, `pipeline`; `trainer` and `arguments` import neither each other nor `pipeline`; only the package and
    the command layer import `pipeline`."""
    graph = import_graph()
    room = "hf_eagle31.training."
    top = {room + m for m in ("trainer", "arguments", "pipeline")}
    beside = {m for m in graph if m.startswith(room) and m not in top}
    assert {room + m for m in ("collator", "checkpoints", "budget", "drafter", "lora", "memory")} <= beside
    offenders = {m: sorted(graph[m] & top) for m in beside if graph[m] & top}
    offenders |= {m: sorted(graph[m] & top) for m in (room + "trainer", room + "arguments") if graph[m] & top}
    importers = {m for m, edges in graph.items() if room + "pipeline" in edges}
    offenders |= {m: ["pipeline"] for m in importers if m != "hf_eagle31.training" and not m.startswith(COMMAND_LAYER)}
    assert not offenders


def test_pyproject_lists_every_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {_module_name(p) for p in PACKAGE.rglob("__init__.py") if "drafters" not in p.parts}
    on_disk |= {"hf_eagle31.modeling", "hf_eagle31.hub_cards"}
    assert set(config["packages"]) == on_disk
