"""The ``imgscan`` command line: output shapes, JSON Lines and exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from helpers import run_cli
from oracles import data_zero_runs, needs_qemu, qemu_info, qemu_io, qemu_map, run

from imgscan.cli import main

SAMPLE = Path(str(resources.files("imgscan") / "samples" / "demo.qcow2"))
# Child interpreters run from here, not from the checkout, whose uncompiled
# imgscan/ would shadow the installed package.
NEUTRAL_CWD = Path(__file__).resolve().parent


def test_demo_runs_on_the_shipped_sample() -> None:
    proc = run_cli("demo")
    assert proc.returncode == 0, proc.stderr
    assert "qcow2" in proc.stdout
    assert "64 MiB (67108864 bytes)" in proc.stdout


@needs_qemu
def test_info_json_matches_qemu_img() -> None:
    proc = run_cli("info", "--json", str(SAMPLE))
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    oracle = qemu_info(SAMPLE)
    assert info["schema_version"] == 1
    assert info["path"] == str(SAMPLE)
    assert info["format"] == oracle["format"]
    assert info["virtual_size"] == oracle["virtual-size"]
    assert info["cluster_size"] == oracle["cluster-size"]
    assert info["file_size"] == SAMPLE.stat().st_size
    for key in ("partition_table", "partitions", "filesystem", "boot_mode", "windows"):
        assert key in info


@needs_qemu
def test_map_json_matches_qemu_img() -> None:
    proc = run_cli("map", "--json", str(SAMPLE))
    assert proc.returncode == 0, proc.stderr
    assert data_zero_runs(json.loads(proc.stdout)) == data_zero_runs(qemu_map(SAMPLE))


def test_map_text_is_a_table() -> None:
    proc = run_cli("map", str(SAMPLE))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["start", "length", "kind", "host", "offset", "file"]
    assert len(lines) > 1


def test_several_images_give_json_lines_and_exit_2_on_any_failure(tmp_path: Path) -> None:
    missing = tmp_path / "missing.img"
    truncated = tmp_path / "short.qcow2"
    truncated.write_bytes(SAMPLE.read_bytes()[:50])
    proc = run_cli("info", "--json", str(SAMPLE), str(missing), str(truncated))
    assert proc.returncode == 2
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(SAMPLE), str(missing), str(truncated)]
    assert "error" not in lines[0]
    assert lines[1]["error"]["type"] == "ImageError"
    assert lines[2]["error"]["type"] == "TruncatedImage"
    assert lines[2]["error"]["offset"] == 0
    assert str(truncated) in proc.stderr and "qcow2" in proc.stderr


def test_text_info_is_aligned() -> None:
    proc = run_cli("info", str(SAMPLE))
    assert proc.returncode == 0
    rows = proc.stdout.splitlines()
    assert rows[0] == str(SAMPLE)
    value_columns = {m.end() for row in rows[1:] if (m := re.match(r"  \S+(?: \S+)*\s{2,}", row))}
    assert len(value_columns) == 1, rows


def test_bad_usage_exits_2() -> None:
    assert run_cli("info").returncode == 2
    assert run_cli("frobnicate").returncode == 2


def test_info_path_does_not_import_numpy() -> None:
    code = (
        "import sys\n"
        "from imgscan.cli import main\n"
        f"main(['info', {str(SAMPLE)!r}])\n"
        "assert 'numpy' not in sys.modules, 'numpy imported on the info path'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=NEUTRAL_CWD)
    assert proc.returncode == 0, proc.stderr


def test_main_returns_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--json", str(SAMPLE)]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "qcow2"


@needs_qemu
def test_map_json_equals_qemu_img_entry_for_entry(tmp_path: Path) -> None:
    """Uncompressed qcow2: the same entries, keys and values as qemu-img (plus ``compressed``)."""
    path = tmp_path / "plain.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", path, "64M")
    qemu_io(path, "write -P 0x11 0 192k", "write -z 1M 128k", "write -P 0x22 5M 64k",
            "write -P 0x33 63M 1M")
    proc = run_cli("map", "--json", str(path))
    assert proc.returncode == 0, proc.stderr
    ours = json.loads(proc.stdout)
    assert all(entry.pop("compressed") is False for entry in ours)
    assert ours == qemu_map(path)
