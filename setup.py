"""Build the Cython core: every imgscan/_core/*.pyx becomes one extension module."""

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

CORE = Path("imgscan") / "_core"

extensions = [
    Extension(
        f"imgscan._core.{pyx.stem}",
        [str(pyx)],
        extra_compile_args=["-O2"],
    )
    for pyx in sorted(CORE.glob("*.pyx"))
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": True,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
        },
    ),
)
