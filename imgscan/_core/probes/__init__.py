"""Filesystem and volume probes, one module per family of on-disk formats.

:func:`imgscan._core.filesystems.probe_volume` is the entry point and runs
them in libblkid's order; :mod:`.volume` holds what they share.
"""
