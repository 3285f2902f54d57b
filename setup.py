"""Build the Cython core: every .pyx under imgscan/_core becomes one extension module.

Both steps run in parallel, one job per core: cythonize translates the modules
in a pool, and build_ext compiles them concurrently (setuptools' ``parallel``
option, which pip's build otherwise leaves at one job). The C compiler takes
Python's own flags (``-O3``) with no second optimisation level, and no debug
information (``-g0``), which is most of the compile time of the generated C and
is never used from an installed wheel. The typed-memoryview support Cython
would otherwise generate and compile into every module that slices a buffer (a
third of all the C, most of a small module's) is generated once, into
``imgscan._core._cyutility``, which those modules share (Cython >= 3.1,
``shared_utility_qualified_name``). Before cythonize, the offsets and magics the
volume probes (Linux, NTFS, FAT, ISO 9660), the partition reader, the format
registry's signatures, the qcow2 reader and the VMDK sparse extent reader need are
rendered from their c_<format> declarations into generated ``.pxi`` files
(``imgscan/_core/probes/compiled_layouts.py``), which those modules include: they then
import no declaration module at start-up.
"""

import os
import sys
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# The checkout itself, for the build-time renderer (setuptools.build_meta, as pip runs it,
# does not put the project's directory on sys.path).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from imgscan._core.probes import compiled_layouts

CORE = Path("imgscan") / "_core"
JOBS = os.cpu_count() or 1
#: The module holding Cython's shared utility code (the memoryview type and helpers).
SHARED_UTILITY = "imgscan._core._cyutility"


class ParallelBuildExt(build_ext):
    """build_ext compiling one extension per core unless ``--parallel`` says otherwise."""

    def finalize_options(self) -> None:
        super().finalize_options()
        if not self.parallel:
            self.parallel = JOBS


extensions = [
    Extension(".".join(pyx.with_suffix("").parts), [str(pyx)], extra_compile_args=["-g0"])
    for pyx in sorted(CORE.rglob("*.pyx"))
]
extensions.append(Extension(SHARED_UTILITY, [SHARED_UTILITY.replace(".", os.sep) + ".c"],
                            extra_compile_args=["-g0"]))

compiled_layouts.write()

setup(
    cmdclass={"build_ext": ParallelBuildExt},
    ext_modules=cythonize(
        extensions,
        language_level=3,
        nthreads=JOBS,
        shared_utility_qualified_name=SHARED_UTILITY,
        compiler_directives={
            "boundscheck": True,
            "wraparound": False,
            "cdivision": True,
            "embedsignature": True,
        },
    ),
)
