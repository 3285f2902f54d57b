"""Each configured interface and its IPv4 method, from every network configuration system."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import linux_configs as real
from helpers.linux_tree import Content, guest_tree

from imgscan import limits
from imgscan.errors import LimitExceeded
from imgscan.guest.linux.network import network


def entries(tmp_path: Path, files: dict[str, Content]) -> list[tuple[str, str, str]]:
    found, _ = network(guest_tree(tmp_path, files))
    return [(e["interface"], e["method"], e["source"]) for e in found]


def test_debian_ifupdown_sources_interfaces_d(tmp_path: Path) -> None:
    # Debian 12's interfaces sources interfaces.d/*; its cloud image puts eth0 there.
    got = entries(tmp_path, {
        "etc/network/interfaces": real.DEBIAN12_INTERFACES,
        "etc/network/interfaces.d/50-cloud-init": "auto lo\niface lo inet loopback\n\n"
        "auto eth0\niface eth0 inet dhcp\niface eth0 inet6 auto\n",
        "etc/network/interfaces.d/60-static": "iface ens4 inet static\n    address 10.0.0.2/24\n"
        "iface ens5 inet6 static\n  address fd00::2/64\niface bond0 \\\n inet manual\n",
        "etc/network/interfaces.d/.hidden": "iface hid inet dhcp\n"})
    d = "/etc/network/interfaces.d"
    assert got == [("eth0", "dhcp", f"{d}/50-cloud-init"), ("ens4", "static", f"{d}/60-static"),
                   ("ens5", "other", f"{d}/60-static"), ("bond0", "manual", f"{d}/60-static")]


def test_ifupdown_source_directory_relative_and_loops(tmp_path: Path) -> None:
    got = entries(tmp_path, {
        "etc/network/interfaces": "source-directory interfaces.d\nsource interfaces\n"
        "source extra/*.cfg\niface eth9 inet ppp\n",
        "etc/network/interfaces.d/eth0": "iface eth0 inet dhcp\nsource ../interfaces\n",
        "etc/network/interfaces.d/skip.cfg": "iface no inet dhcp\n",   # not a run-parts name
        "etc/network/extra/a.cfg": "iface eth1 inet dhcp\nsource /etc/network/extra/a.cfg\n"})
    assert [(i, m) for i, m, _ in got] == [("eth9", "other"), ("eth0", "dhcp"), ("eth1", "dhcp")]


def test_ifcfg_rhel_and_suse(tmp_path: Path) -> None:
    rhel, suse = "etc/sysconfig/network-scripts", "etc/sysconfig/network"
    got = entries(tmp_path, {
        f"{rhel}/ifcfg-eth0": real.CENTOS7_IFCFG_ETH0,
        f"{rhel}/ifcfg-vagrant": real.RHEL7_IFCFG_STATIC,         # DEVICE=eth1
        f"{rhel}/ifcfg-eth2": "DEVICE=eth2\nONBOOT=yes\n",          # no BOOTPROTO, no address
        f"{rhel}/ifcfg-eth0.bak": "BOOTPROTO=none\n",
        f"{rhel}/ifcfg-lo": "DEVICE=lo\nIPADDR=127.0.0.1\n",
        f"{rhel}/ifup-eth": "#!/bin/bash\n",
        f"{suse}/ifcfg-eth0": real.SLES15_IFCFG_ETH0,
        f"{suse}/ifcfg-eth1": "BOOTPROTO='static'\nIPADDR='192.168.1.5/24'\n",
        f"{suse}/ifcfg-eth2": "BOOTPROTO='dhcp6'\n",
        f"{suse}/ifcfg-eth3": "BOOTPROTO='dhcp+autoip'\n",
        f"{suse}/ifcfg-eth4": "BOOTPROTO='ibft'\n"})
    assert [(i, m) for i, m, _ in got] == [
        ("eth0", "dhcp"), ("eth2", "manual"), ("eth1", "static"),
        ("eth0", "dhcp"), ("eth1", "static"), ("eth2", "other"), ("eth3", "dhcp"),
        ("eth4", "other")]
    assert got[0][2] == "/etc/sysconfig/network-scripts/ifcfg-eth0"


def test_netplan(tmp_path: Path) -> None:
    got = entries(tmp_path, {
        "etc/netplan/50-cloud-init.yaml": real.UBUNTU_NETPLAN_CLOUD,
        "etc/netplan/60-static.yaml": real.UBUNTU_NETPLAN_STATIC,
        "etc/netplan/70-more.yaml": "network:\n  version: 2\n  ethernets:\n    id0:\n"
        "      match: {name: \"en*\"}\n      dhcp4: yes\n    v6:\n      addresses: ['fd00::1/64']\n"
        "    bare: {}\n  bonds:\n    bond0:\n      interfaces: [id0]\n      dhcp4: false\n",
        "etc/netplan/README": "network: {ethernets: {x: {dhcp4: true}}}\n"})
    assert [(i, m) for i, m, _ in got] == [
        ("ens5", "dhcp"), ("enp7s0", "static"), ("en*", "dhcp"), ("v6", "other"),
        ("bare", "manual"), ("bond0", "manual")]


def test_networkmanager_keyfiles(tmp_path: Path) -> None:
    nm = "etc/NetworkManager/system-connections"
    got = entries(tmp_path, {
        f"{nm}/System eth0.nmconnection": real.RHEL9_NMCONNECTION,
        f"{nm}/Wired connection 1": "[connection]\nid=Wired connection 1\ntype=ethernet\n",
        f"{nm}/static.nmconnection": "[connection]\ninterface-name=eth1\n[ipv4]\n"
        "method=manual\naddress1=10.1.1.2/24\n",
        f"{nm}/off.nmconnection": "[connection]\ninterface-name=eth2\n[ipv4]\nmethod=disabled\n",
        f"{nm}/lo.nmconnection": "[connection]\ntype=loopback\ninterface-name=lo\n",
        f"{nm}/x.nmconnection~": "[connection]\ninterface-name=no\n"})
    assert [(i, m) for i, m, _ in got] == [
        ("eth0", "dhcp"), ("*", "dhcp"), ("eth2", "other"), ("eth1", "static")]


def test_networkd(tmp_path: Path) -> None:
    d = "etc/systemd/network"
    got = entries(tmp_path, {
        f"{d}/10-en.network": real.NETWORKD_DHCP,
        f"{d}/20-static.network": "[Match]\nName=eth1\n[Network]\nAddress=10.0.0.5/24\n",
        f"{d}/30-addr.network": "[Match]\nMACAddress=52:54:00:12:34:56\n[Address]\n"
        "Address=192.0.2.4/24\n",
        f"{d}/40-v6.network": "[Match]\nName=eth3 eth4\n[Network]\nDHCP=ipv6\n",
        f"{d}/50-lo.network": "[Match]\nName=lo\n[Network]\nAddress=127.0.0.1/8\n",
        f"{d}/60-none.network": "[Match]\nName=eth5\n",
        f"{d}/10-en.link": "[Match]\nOriginalName=*\n"})
    assert [(i, m) for i, m, _ in got] == [
        ("en*", "dhcp"), ("eth1", "static"), ("*", "static"), ("eth3 eth4", "other"),
        ("eth5", "manual")]


def test_nothing_configured(tmp_path: Path) -> None:
    assert network(guest_tree(tmp_path, {"etc/": ""})) == ([], None)


def test_evidence_names_each_file_once(tmp_path: Path) -> None:
    tree = guest_tree(tmp_path, {"etc/network/interfaces": "iface a inet dhcp\n"
                                 "iface b inet dhcp\n"})
    assert network(tree)[1] == "/etc/network/interfaces"


def test_entries_cap_on_a_configuration_directory(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    files: dict[str, Content] = {f"etc/systemd/network/{i:04d}.network":
                                 f"[Match]\nName=eth{i}\n[Network]\nDHCP=yes\n"
                                 for i in range(40)}
    tree = guest_tree(tmp_path, files)
    monkeypatch.setattr(limits, "LINUX_MAX_ENTRIES", 40)
    assert len(network(tree)[0]) == 40
    monkeypatch.setattr(limits, "LINUX_MAX_ENTRIES", 39)
    with pytest.raises(LimitExceeded, match=r"configuration files 40 exceeds limits\.LINUX"):
        network(tree)


def test_a_long_chain_of_ifupdown_includes_stops_at_the_cap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file sourcing the next: at most LINUX_MAX_ENTRIES files are read in all."""
    files: dict[str, Content] = {f"etc/network/i{k}": f"source i{k + 1}\niface e{k} inet dhcp\n"
                                 for k in range(30)}
    files["etc/network/interfaces"] = "source i0\n"
    files["etc/network/i29"] = "iface e29 inet dhcp\n"
    tree = guest_tree(tmp_path, files)
    monkeypatch.setattr(limits, "LINUX_MAX_ENTRIES", 31)
    assert len(network(tree)[0]) == 30
    monkeypatch.setattr(limits, "LINUX_MAX_ENTRIES", 30)
    with pytest.raises(LimitExceeded, match="files sourced 31 exceeds"):
        network(tree)


def test_a_huge_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = guest_tree(tmp_path, {"etc/netplan/a.yaml": "#" * 5000 + "\n"})
    monkeypatch.setattr(limits, "LINUX_MAX_CONFIG_BYTES", 4096)
    with pytest.raises(LimitExceeded, match="LINUX_MAX_CONFIG_BYTES"):
        network(tree)


def test_binary_garbage_configures_nothing(tmp_path: Path) -> None:
    junk = bytes(range(256)) * 4
    got = entries(tmp_path, {"etc/network/interfaces": junk,
                             "etc/netplan/x.yaml": junk,
                             "etc/sysconfig/network-scripts/ifcfg-eth0": junk,
                             "etc/NetworkManager/system-connections/a.nmconnection": junk,
                             "etc/systemd/network/a.network": junk})
    assert [(i, m) for i, m, _ in got] == [("eth0", "manual"), ("*", "dhcp"), ("*", "manual")]


def test_long_continuations_and_repeated_sources_are_linear(tmp_path: Path) -> None:
    """200k continued lines and 100k repeated ``source`` lines (each file and each
    pattern read once), which a rebuild-the-string join or a list popped from its front
    made quadratic."""
    from imgscan.guest.linux.keyfile import entries
    from imgscan.guest.linux.network import ifupdown_lines
    assert len(list(ifupdown_lines("iface eth0 \\\n" * 200_000 + "inet dhcp\n"))) == 1
    assert len(entries("[a]\nk=v\\\n" + "x\\\n" * 200_000 + "y\n")) == 1
    got = network(guest_tree(tmp_path, {
        "etc/network/interfaces": "source /etc/network/eth0\n" * 100_000,
        "etc/network/eth0": "iface eth0 inet dhcp\n"}))[0]
    assert [(e["interface"], e["method"]) for e in got] == [("eth0", "dhcp")]


def test_a_long_run_of_yaml_anchors_is_linear() -> None:
    from imgscan.guest.linux.yamlsubset import load
    doc = load("network:\n  version: " + "& " * 200_000 + "2\n")
    assert doc["network"] == {"version": "2"}
