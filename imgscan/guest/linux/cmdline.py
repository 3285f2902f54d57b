"""Parameters of a kernel command line, as the kernel and its early users read them.

Source: the kernel's ``Documentation/admin-guide/kernel-parameters.rst`` (parameters
separated by spaces, a value in double quotes may hold spaces, a later parameter
of the same name wins for the users here: ``selinux=``, ``cloud-init=``).
"""

from __future__ import annotations


def parameters(cmdline: str) -> dict[str, str]:
    """``name -> value`` of every ``name=value`` word of ``cmdline`` (a bare word
    maps to ``""``); double quotes group a value with spaces and are dropped."""
    found: dict[str, str] = {}
    word: list[str] = []
    quoted = False
    for ch in cmdline + " ":
        if ch == '"':
            quoted = not quoted
        elif ch.isspace() and not quoted:
            if word:
                name, _, value = "".join(word).partition("=")
                found[name] = value
                word = []
        else:
            word.append(ch)
    return found
