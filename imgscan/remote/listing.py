"""``python -m imgscan.remote.listing URL``: the objects under a URL, one JSON line each.

A scan lists a bucket in this child process rather than in its own: the client's
runtime (obstore's threads) does not survive ``fork``, and the scan forks its
workers after listing has begun, so the scanning process never starts it. Each
line is ``[url, size, etag, modified_ns]``, written page by page as the store
lists them; a failure is one last line ``{"error": "STRUCTURE: PROBLEM"}`` (never a
credential) and exit status 1.
"""

from __future__ import annotations

import json
import sys

from ..errors import ImageError
from .store import list_objects, open_object


def main(url: str) -> int:
    out = sys.stdout
    try:
        # HTTP has no listing: an http(s):// URL is the one object it names.
        objects = [open_object(url)] if url.lower().startswith("http") else list_objects(url)
        for obj in objects:
            out.write(json.dumps([obj.url, obj.size, obj.etag, obj.modified_ns]) + "\n")
            out.flush()
    except ImageError as exc:
        out.write(json.dumps({"error": f"{exc.structure}: {exc.problem}"}) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
