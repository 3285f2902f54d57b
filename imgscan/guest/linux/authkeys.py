"""The users other than root who can log in over SSH with a key.

Sources: passwd(5) (``name:password:UID:GID:GECOS:home:shell``); sshd_config(5)
(``AuthorizedKeysFile`` defaults to ``.ssh/authorized_keys`` in the user's home;
blank lines and ``#`` lines are ignored); AWS VM Import's Linux requirement "a
non-root user with a key" (import-rules.md 2.1). A user whose shell is ``nologin``
or ``false`` cannot log in and does not count.
"""

from __future__ import annotations

import posixpath

from imgscan import limits

TYPE_CHECKING = False
if TYPE_CHECKING:
    from imgscan.guest.linux.tree import GuestTree

PASSWD = "/etc/passwd"
AUTHORIZED_KEYS = ".ssh/authorized_keys"
NO_LOGIN = ("nologin", "false")


def key_users(tree: GuestTree) -> tuple[list[str] | None, str | None]:
    """The login users (UID not 0) whose ``~/.ssh/authorized_keys`` holds a key, and
    the files read; None without ``/etc/passwd``."""
    text = tree.text(PASSWD)
    if text is None:
        return None, None
    lines = [line for line in text.split("\n") if line.count(":") >= 6]
    limits.enforce(len(lines), "LINUX_MAX_ENTRIES", tree.where(PASSWD), "passwd", None,
                   "users")
    users, where = [], [tree.where(PASSWD)]
    for line in lines:
        name, _, uid, _, _, home, shell = line.split(":", 6)
        if uid.strip() == "0" or posixpath.basename(shell.strip()) in NO_LOGIN \
                or not home.startswith("/"):
            continue
        path = posixpath.join(home, AUTHORIZED_KEYS)
        keys = tree.text(path)
        if keys is not None and any(k.strip() and not k.lstrip().startswith("#")
                                    for k in keys.split("\n")):
            users.append(name)
            where.append(tree.where(path))
    return users, "; ".join(where)
