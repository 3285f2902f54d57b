"""Cloudbase-Init: where it is installed and what its configuration asks for.

Sources: ../shared/docs/windows-inspection.md C7 (cloudbase-init-installer
``Product.wxs``: ``[ProgramFiles]\\Cloudbase Solutions\\Cloudbase-Init``, the
32-bit installer under ``Program Files (x86)`` on x64, and the
``cloudbase-init`` service) and the Huawei IMS guide (the ``[DEFAULT]`` keys
it asks for). cloudbase-init reads the file with oslo.config, an INI dialect
that :mod:`configparser` reads too (continuation lines, ``=``, no interpolation).
"""

from __future__ import annotations

INSTALL_DIRS = ("Program Files", "Program Files (x86)")
PRODUCT_DIR = "Cloudbase Solutions\\Cloudbase-Init"
CONF = "conf\\cloudbase-init.conf"
#: [DEFAULT] keys reported (the Huawei guide's list); lists are comma-separated.
KEYS = ("username", "groups", "inject_user_password", "first_logon_behaviour",
        "netbios_host_name_compatibility", "metadata_services", "plugins",
        "real_time_clock_utc", "retry_count")
LIST_KEYS = ("metadata_services", "plugins", "groups")


def parse_conf(text: str) -> dict[str, object]:
    """The reported ``[DEFAULT]`` keys of a cloudbase-init.conf (lists split on commas).

    Raises ValueError when the text is not INI.
    """
    import configparser
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise ValueError(str(exc).splitlines()[0]) from exc
    defaults = parser.defaults()
    out: dict[str, object] = {}
    for key in KEYS:
        if key not in defaults:
            continue
        raw = defaults[key]
        if key in LIST_KEYS:
            out[key] = [p.strip() for p in raw.replace("\n", ",").split(",") if p.strip()]
        elif key == "inject_user_password":
            out[key] = raw.strip().lower() in ("true", "1", "yes", "on")
        else:
            out[key] = raw.strip()
    return out
