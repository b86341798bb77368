"""Packages for pyproject.toml's package-dir: every package under the mapped folders."""

from setuptools import find_packages, setup

ROOTS = ("actors", "wire", "store", "admin")

setup(
    packages=["dispatchd"]
    + [f"dispatchd.{name}" for name in find_packages("dispatchd")]
    + [f"dispatchd.{name}" for name in find_packages(include=[f"{r}*" for r in ROOTS])],
)
