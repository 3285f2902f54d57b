"""Bulk scanning: walk a library, scan every image in parallel, keep a catalog.

Nothing here is imported on the single-image ``info`` / ``check`` path.
"""
