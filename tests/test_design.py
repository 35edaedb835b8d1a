"""The shape of the code: one source for the experiment's settings, noise models as one file,
import layering, and the allocation object every method returns."""
import ast
import collections
import dataclasses
import math
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

import noisesim
from noisesim.allocate import Allocation
from noisesim.experiment.cli import build_parser, load_yaml, parse_args
from noisesim.experiment.config import ExperimentConfig
from noisesim.models.cifar_resnet import resnet20
from noisesim.noise import NoiseModel
from noisesim.registry import NOISE_MODELS

ROOT = Path(__file__).resolve().parents[1] / "noisesim"
# the layers, bottom up: each part of the package (a subpackage or a top module) belongs to exactly one
CORE = {"config", "settings", "registry", "ops", "batches", "io", "version", "provenance", "quant", "noise", "nn", "context",
        "coverage", "energy", "distributed", "usage", "__init__"}
LIBRARY = {"models", "data", "stats", "allocate", "train", "precision", "export"}
REPORTS = {"reports"}
DRIVER = {"experiment", "commands", "__main__"}
MAY_IMPORT = {"core": CORE, "library": CORE | LIBRARY, "reports": CORE | {"stats"},
              "driver": CORE | LIBRARY | REPORTS | DRIVER}
LAYER_OF = {part: layer for layer, parts in (("core", CORE), ("library", LIBRARY), ("reports", REPORTS),
                                              ("driver", DRIVER)) for part in parts}
FIELDS = {f.name for f in dataclasses.fields(ExperimentConfig)}


def test_parser_yaml_keys_and_config_fields_are_one_set(tmp_path):
    dests = {a.dest for a in build_parser()._actions} - {"help", "config", "hardware"}
    assert dests == FIELDS
    yaml_file = tmp_path / "all.yaml"
    yaml_file.write_text(yaml.safe_dump(ExperimentConfig().to_dict()))
    assert set(load_yaml(str(yaml_file))) == FIELDS
    cfg = parse_args(["--config", str(yaml_file)])
    assert cfg == ExperimentConfig()
    assert set(cfg.recorded()) <= FIELDS and set(cfg.describe()) == FIELDS


def test_sweep_fields_are_the_point_fields():
    sweeps = {f.name for f in dataclasses.fields(ExperimentConfig) if f.metadata["sweep"]}
    point = {f.name for f in dataclasses.fields(noisesim.experiment.config.Point)}
    assert sweeps == point


def test_a_method_setting_rekeys_only_that_methods_points():
    """Changing greedy's epsilon must not make a resumed run recompute its uniform or trained points."""
    def ids(*extra):
        cfg = parse_args(["--config", "none", "--noise_type", "thermal", "--allocation", "uniform", "trained",
                          "greedy", *extra])
        return {p.allocation: cfg.point_id(p) for p in cfg.points()}

    base, other = ids(), ids("--greedy_epsilon", "0.02")
    assert base["uniform"] == other["uniform"] and base["trained"] == other["trained"]
    assert base["greedy"] != other["greedy"]
    assert ids("--mc_repeats", "3")["uniform"] != base["uniform"]
    assert ids("--acc_drop", "0.02")["uniform"] == base["uniform"]  # a search target reaches no point


def test_the_experiment_redeclares_no_setting_of_the_simulation_or_the_methods():
    """Each setting has one declaration: SimConfig's and the methods' reach main.py through include_settings."""
    from noisesim.allocate import METHOD_SETTINGS
    from noisesim.settings import exposed
    from noisesim.stats.isoaccuracy import IsoAccuracySettings
    from noisesim.train.qat import QATSettings

    source = (ROOT / "experiment" / "config.py").read_text()
    assert set(ExperimentConfig.owners) == {noisesim.SimConfig, QATSettings, IsoAccuracySettings, *METHOD_SETTINGS}
    owned = {f.name for owner in ExperimentConfig.owners for f in exposed(owner)}
    body = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "ExperimentConfig")
    declared = {n.target.id for n in body.body if isinstance(n, ast.AnnAssign)}
    assert owned <= FIELDS and not owned & declared
    import inspect

    from noisesim.experiment.runner import make_allocator
    building = inspect.getsource(make_allocator)
    assert "from_settings" in building
    assert not [m for m in noisesim.registry.ALLOCATORS.names() if f'"{m}"' in building]


def test_a_new_setting_is_one_field_in_one_dataclass(tmp_path):
    """A field added to a method's settings is a flag with its help, a YAML key, a results column, a row of the
    card and part of the ids of that method's points only, and it reaches the method that the sweep builds."""
    from noisesim.allocate import ClosedFormAllocator
    from noisesim.allocate.closed_form import ClosedFormSettings
    from noisesim.experiment.runner import make_allocator
    from noisesim.reports.cards import recorded_settings
    from noisesim.settings import include_settings, setting

    @dataclasses.dataclass(frozen=True)
    class FlooredSettings(ClosedFormSettings):
        energy_floor: float = setting(0.05, "closed form: the lowest energy, as a fraction of the target",
                                      "allocation", label="energy floor", check=lambda v: None if v < 1 else "< 1")

    class Floored(ClosedFormAllocator):
        Settings = FlooredSettings

        @classmethod
        def from_settings(cls, s, job):
            return cls(s.sensitivity, s.sensitivity_batches, floor=s.energy_floor)

    @dataclasses.dataclass(frozen=True)
    @include_settings(FlooredSettings)
    class Extended(ExperimentConfig):
        pass

    noisesim.registry.ALLOCATORS.register("floored", Floored)
    try:
        parser = build_parser(config=Extended)
        assert "closed form: the lowest energy" in parser.format_help()
        yaml_file = tmp_path / "floor.yaml"
        yaml_file.write_text("energy_floor: 0.2\nallocation: [uniform, floored]\ntarget_emac: [5]\n")
        cfg = parse_args(["--config", str(yaml_file)], config=Extended)
        assert cfg.energy_floor == 0.2
        assert parse_args(["--config", str(yaml_file), "--energy_floor", "0.3"], config=Extended).energy_floor == 0.3
        with pytest.raises(noisesim.experiment.cli.UsageError, match="--energy_floor 2.0: < 1"):
            parse_args(["--config", str(yaml_file), "--energy_floor", "2"], config=Extended)
        uniform, floored = cfg.points()
        assert cfg.recorded_for(floored)["energy_floor"] == 0.2 and cfg.recorded_for(uniform)["energy_floor"] is None
        assert recorded_settings(cfg.describe())["energy floor"] == "0.2"
        other = dataclasses.replace(cfg, energy_floor=0.1)
        assert other.point_id(floored) != cfg.point_id(floored) and other.point_id(uniform) == cfg.point_id(uniform)
        assert make_allocator(cfg, floored).floor == 0.2
    finally:
        noisesim.registry.ALLOCATORS.remove("floored")


def test_a_new_noise_model_is_one_class_and_its_registration():
    class ToyNoise(NoiseModel):
        """sigma = 0.5 / sqrt(E) on every output, whatever the operands."""

        default_sigma = 0.5

        def std(self, ops, ndim):
            return self.sigma / torch.sqrt(self.along_channels(self.energy(), ndim))

    NOISE_MODELS.register("toy", ToyNoise)
    try:
        sim = noisesim.prepare(nn.Linear(64, 32), noisesim.SimConfig(noise_type="toy", e_mac=4.0, seed=0))
        x = torch.randn(4096, 64)
        noisesim.calibrate(sim, [x])
        with torch.no_grad():
            noisy = sim(x)
            with noisesim.noise_disabled(sim):
                delta = noisy - sim(x)
        assert delta.std().item() == pytest.approx(0.25, rel=0.02)
        assert "toy sigma=0.5 E=4" in sim.noise.extra_repr()
        assert parse_args(["--noise_type", "toy", "shot"]).noise_type == ("toy", "shot")
    finally:
        NOISE_MODELS.remove("toy")
    with pytest.raises(noisesim.ConfigError, match="noise_type must be one of"):
        noisesim.SimConfig(noise_type="toy")


def _imports() -> dict[str, set[str]]:
    """Which top-level parts of noisesim each part imports (a part: a subpackage or a top module)."""
    graph = collections.defaultdict(set)
    for path in ROOT.rglob("*.py"):
        part = path.relative_to(ROOT).with_suffix("").parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for m in modules:
                if m.startswith("noisesim.") and m.split(".")[1] != part:
                    graph[part].add(m.split(".")[1])
    return graph


def test_every_part_of_the_package_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
             if (p.suffix == ".py" or (p / "__init__.py").is_file())}
    assert parts == set(LAYER_OF), f"undeclared: {parts - set(LAYER_OF)}, gone: {set(LAYER_OF) - parts}"


def test_the_documented_layout_names_every_part_of_the_package():
    block = (ROOT.parent / "docs" / "design.md").read_text().split("## Code layout", 1)[1].split("```", 2)[1]
    missing = [p for p in sorted(LAYER_OF) if p != "__init__" and f"{p}/" not in block and f"{p}.py" not in block]
    assert not missing, f"the code layout in docs/design.md lacks {missing}"


def test_each_layer_imports_only_what_lies_below_it():
    """Core imports only core; the library (models, data, methods, training, precision, export) never the driver or
    the reports; the reports read run folders with core and statistics only; no two parts import each other."""
    graph = _imports()
    for part, imported in graph.items():
        allowed = MAY_IMPORT[LAYER_OF[part]]
        assert imported <= allowed, f"{part} ({LAYER_OF[part]}) imports {imported - allowed}"
    pairs = {(a, b) for a in graph for b in graph[a] if a in graph.get(b, set())}
    assert not pairs


def test_models_and_data_stay_apart_and_export_needs_only_the_core():
    graph = _imports()
    assert "data" not in graph["models"] and "models" not in graph["data"]
    assert graph["export"] <= CORE, f"the export library imports {graph['export'] - CORE}"


def _prepared(**kw):
    sim = noisesim.prepare(resnet20(10, 1), noisesim.SimConfig(noise_type="thermal", e_mac=5.0, **kw))
    noisesim.calibrate(sim, [torch.randn(4, 1, 28, 28)])
    return sim


HEAVY = ("torchvision", "torch._dynamo", "pandas", "scipy", "matplotlib", "seaborn", "transformers")
LOADED = """
import contextlib, io, sys
import noisesim
print(*[m for m in {heavy} if m in sys.modules])
from noisesim.commands import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(["--help"])
print(*[m for m in {heavy} if m in sys.modules])
"""


def test_import_and_help_load_no_heavy_module():
    """``import noisesim`` and ``noisesim --help`` start in little more than ``import torch``: torchvision,
    torch.compile's machinery, pandas, SciPy and the plotting libraries load when a command needs them."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", LOADED.format(heavy=HEAVY)], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["", ""], f"import noisesim loads: {out[0]}; noisesim --help loads: {out[1:]}"


def test_allocation_reads_applies_and_round_trips(tmp_path):
    sim = _prepared(noise_per_channel=True)
    layers = noisesim.sim_layers(sim)
    for i, m in enumerate(layers):
        m.set_energy(torch.linspace(1.0, 2.0, m.noise.log_energy.numel()) * (i + 1))
    alloc = Allocation.from_model(sim, "trained", "channel")
    assert alloc.average_energy() == pytest.approx(noisesim.average_energy(sim).item(), rel=1e-6)
    alloc.save(tmp_path / "a.json")
    back = Allocation.load(tmp_path / "a.json")
    assert back.layers == alloc.layers and back.method == "trained" and back.granularity == "channel"
    fresh = _prepared(noise_per_channel=True)
    back.apply(fresh)
    for a, b in zip(layers, noisesim.sim_layers(fresh)):
        assert torch.allclose(a.noise.energy(), b.noise.energy())


def test_allocation_rescales_to_a_budget_and_to_uniform():
    sim = _prepared()
    for i, m in enumerate(noisesim.sim_layers(sim)):
        m.set_energy(float(i + 1))
    alloc = Allocation.from_model(sim)
    scaled = alloc.with_average_energy(3.0)
    assert scaled.average_energy() == pytest.approx(3.0)
    ratios = {n: scaled.layers[n].energy[0] / alloc.layers[n].energy[0] for n in alloc.layers}
    assert max(ratios.values()) == pytest.approx(min(ratios.values()))
    uniform = alloc.uniform(7.0).apply(sim)
    assert all(m.noise.energy().item() == pytest.approx(7.0) for m in noisesim.sim_layers(uniform))
    assert math.isclose(noisesim.average_energy(sim).item(), 7.0, rel_tol=1e-6)


def test_allocation_of_bits_applies_to_fixed_and_learnable_quantizers():
    sim = _prepared()
    alloc = Allocation.from_model(sim)
    first = next(iter(alloc.layers))
    alloc.layers[first].weight_bits, alloc.layers[first].act_bits = [4.0], 6.0
    alloc.apply(sim)
    layer = noisesim.sim_layers(sim)[0]
    assert layer.weight_quant.mean_bits() == 4 and layer.act_quant.mean_bits() == 6
    assert Allocation.from_model(sim).layers[first].weight_bits == [4.0]


def test_allocation_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read an allocation"):
        Allocation.load(bad)
    alloc = Allocation.from_model(_prepared())
    alloc.layers["no.such.layer"] = alloc.layers["fc"]
    with pytest.raises(ValueError, match="no.such.layer"):
        alloc.apply(_prepared())


def test_quantizer_and_noise_switches_are_methods():
    sim = _prepared()
    layer = noisesim.sim_layers(sim)[1]
    x = torch.randn(2, 16, 28, 28)
    layer.noise.disable()
    layer.act_quant.disable()
    with torch.no_grad():
        y = layer(x)
    w = layer.weight_quant(layer.weight)
    assert torch.allclose(y, nn.functional.conv2d(x, w, layer.bias, padding=1), atol=1e-5)
    layer.noise.enable()
    layer.act_quant.enable()
    layer.set_bits(weight=3, act=5)
    assert layer.weight_quant.mean_bits() == 3 and layer.act_quant.mean_bits() == 5
