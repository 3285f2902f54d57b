"""udev rules pinning interface names to MAC addresses."""

from __future__ import annotations

from pathlib import Path

from helpers import linux_configs as real
from helpers.linux_tree import guest_tree

from imgscan.guest.linux.netrules import persistent_net_rules

D = "etc/udev/rules.d"


def test_pinning_files_found_masks_left_out(tmp_path: Path) -> None:
    tree = guest_tree(tmp_path, {
        f"{D}/70-persistent-net.rules": real.CENTOS6_PERSISTENT_NET,
        # CentOS 6's fix: an empty generator rule masks /lib/udev's
        f"{D}/75-persistent-net-generator.rules": "",
        f"{D}/76-persistent-net-generator.rules": "# disabled\n\n",
        f"{D}/60-custom.rules": 'SUBSYSTEM=="net", ATTR{address}=="52:54:00:aa:bb:cc", '
        'NAME:="lan0"\n',
        f"{D}/61-match-only.rules": 'SUBSYSTEM=="net", ATTR{address}=="52:54:00:aa:bb:cc", '
        'NAME=="x", RUN+="/bin/true"\n',
        f"{D}/99-other.rules": 'KERNEL=="sd*", ATTR{queue/scheduler}="none"\n',
        f"{D}/70-persistent-net.rules.bak": real.CENTOS6_PERSISTENT_NET})
    found, evidence = persistent_net_rules(tree)
    assert found == ["/etc/udev/rules.d/60-custom.rules",
                     "/etc/udev/rules.d/70-persistent-net.rules"]
    assert evidence == "/etc/udev/rules.d (root volume)"


def test_no_rules_directory(tmp_path: Path) -> None:
    assert persistent_net_rules(guest_tree(tmp_path, {"etc/": ""})) == ([], None)
