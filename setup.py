"""Package layout only; everything else is in pyproject.toml.

The repository keeps the services under ``services/`` (see DESIGN.md); they install as the
one importable package ``llmproxy`` (``llmproxy.gateway``, ``llmproxy.platform``, ...).
"""

from setuptools import find_packages, setup

setup(
    package_dir={"llmproxy": "services"},
    packages=["llmproxy", *(f"llmproxy.{p}" for p in find_packages("services"))],
)
