"""The version comes from the repository's VERSION file (the one place it is defined)."""
import os

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "..", "VERSION"), encoding="utf-8") as f:
    setup(version=f.read().strip())
