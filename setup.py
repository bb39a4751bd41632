"""The package list, computed: each top folder named in pyproject.toml's `package-dir` (daemon/ is
`tunelog.daemon`) with every folder below it. pyproject.toml's `packages.find` cannot prefix the
names it finds, so this file does that; everything else is in pyproject.toml.

Folders without `__init__.py` (plugin data, the editor's bundle) are listed too, as namespace
packages, so the data files in them ship and setuptools has no package to warn about."""

import tomllib
from pathlib import Path

from setuptools import find_namespace_packages, setup

ROOT = Path(__file__).resolve().parent
SKIP = ["*node_modules*", "web.js"]
"""npm's folder, and the editor's JS sources (only their bundle ships)."""

folders = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
setup(packages=[f"{name}.{sub}" if sub else name for name, folder in folders.items()
                for sub in ["", *find_namespace_packages(str(ROOT / folder), exclude=SKIP)]])
