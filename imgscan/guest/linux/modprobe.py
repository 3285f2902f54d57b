"""The kernel modules the guest keeps from loading (modprobe's blacklist).

Source: modprobe.d(5): ``*.conf`` files in ``/etc/modprobe.d``, ``/run/modprobe.d``,
``/usr/local/lib/modprobe.d``, ``/lib/modprobe.d`` and ``/usr/lib/modprobe.d`` (a
file of an earlier directory hides one of the same name in a later one);
``blacklist MODULE`` stops loading by alias, ``install MODULE /bin/true`` (or
``/bin/false``) stops every load; the kernel command line's
``modprobe.blacklist=a,b``. Azure wants ``udf`` and ``vfat`` loadable: its
provisioning media is a UDF DVD (import-rules.md 2.1, create-upload-generic.md).
Names compare as modprobe does, ``-`` and ``_`` alike.
"""

from __future__ import annotations

from imgscan.guest.linux.cmdline import parameters
from imgscan.guest.linux.configdir import config_files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from imgscan.guest.linux.tree import GuestTree

DIRECTORIES = ("/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d",
               "/lib/modprobe.d", "/usr/lib/modprobe.d")
#: Commands an ``install`` line runs instead of loading the module.
NO_OP = ("/bin/true", "/bin/false", "/usr/bin/true", "/usr/bin/false", "true", "false")


def module_name(name: str) -> str:
    return name.replace("-", "_")


def blacklisted(tree: GuestTree, cmdline: str | None) -> tuple[list[str], str | None]:
    """The module names blacklisted (sorted) and the files and command line that say so."""
    found: set[str] = set()
    where: list[str] = []
    seen: set[str] = set()
    for directory in DIRECTORIES:
        for path in config_files(tree, directory, lambda n: n.endswith(".conf")):
            name = path.rsplit("/", 1)[1]
            if name in seen:
                continue
            seen.add(name)
            text = tree.text(path)
            if text is None:
                continue
            here = _blacklist_lines(text)
            if here:
                found |= here
                where.append(tree.where(path))
    kernel = parameters(cmdline or "").get("modprobe.blacklist")
    if kernel:
        found |= {module_name(m) for m in kernel.split(",") if m}
        where.append("kernel command line modprobe.blacklist")
    return sorted(found), "; ".join(where) or None


def _blacklist_lines(text: str) -> set[str]:
    """The modules one modprobe.d file blacklists (``\\`` continues a line)."""
    out: set[str] = set()
    for line in text.replace("\\\n", " ").split("\n"):
        words = line.split("#", 1)[0].split()
        blacklist = len(words) >= 2 and words[0] == "blacklist"
        no_op = len(words) >= 3 and words[0] == "install" and words[2] in NO_OP
        if blacklist or no_op:
            out.add(module_name(words[1]))
    return out
