"""[Section] Key=Value files: NetworkManager keyfiles and systemd units."""

from __future__ import annotations

from helpers import linux_configs as real

from imgscan.guest.linux.keyfile import entries, last


def test_nmconnection() -> None:
    found = entries(real.RHEL9_NMCONNECTION)
    assert last(found, "connection", "interface-name") == "eth0"
    assert last(found, "ipv4", "method") == "auto"
    assert last(found, "ipv4", "address1") is None


def test_comments_escapes_continuations_and_repeated_sections() -> None:
    found = entries("top=1\n# c\n; c\n[A]\n key = a\\sb\\\\c\\q \nName=x \\\n  y\n"
                    "[Address]\nAddress=1\n[Address]\nAddress=2\n[broken\nk=v\nnot a pair\n")
    assert found == [("", "top", "1"), ("A", "key", "a b\\c\\q"), ("A", "Name", "x  y"),
                     ("Address", "Address", "1"), ("Address", "Address", "2"),
                     ("Address", "k", "v")]
