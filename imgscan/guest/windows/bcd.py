"""The Boot Configuration Data store: which loader boots, from which partition.

Sources: ../shared/docs/windows-inspection.md section 5 (object types and
element ids observed in a real Windows 10 BCD; Geoff Chappell's BCD notes for
the id classes). A BCD store is a registry hive: ``Objects\\{GUID}`` keys with
``Description\\Type`` and ``Elements\\<hex id>\\Element``.

Partition device elements are declared in :mod:`.structures`
(``BCD_PARTITION_DEVICE``). The GPT form was checked against a real store;
the MBR form follows the same layout and is marked as less certain in the doc.
"""

from __future__ import annotations

from imgscan import limits
from imgscan._core.guid import guid_text
from imgscan.errors import ImageError
from imgscan.findings import finding_id

from .hives import Facts
from .structures import (
    BCD_PARTITION_DEVICE,
    DEVICE_PARTITION,
    MBR_DISK,
    MBR_PARTITION,
    STYLE_GPT,
    STYLE_MBR,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from imgscan._core.regf import Hive

BOOTMGR = "{9dea862c-5cdd-4e70-acc1-f32b344d4795}"
TYPE_BOOTMGR = 0x10100002
TYPE_OS_LOADER = 0x10200003
TYPE_RESUME = 0x10200004
EL_APPLICATION_DEVICE = "11000001"
EL_APPLICATION_PATH = "12000002"
EL_DESCRIPTION = "12000004"
EL_OS_DEVICE = "21000001"
EL_SYSTEM_ROOT = "22000002"
EL_DEFAULT_OBJECT = "23000003"

def device(blob: bytes) -> dict[str, Any]:
    """Decode a partition device element; other device kinds keep only their type."""
    if len(blob) < BCD_PARTITION_DEVICE.end("type"):
        return {"type": None, "length": len(blob)}
    kind = BCD_PARTITION_DEVICE.field(blob, "type")
    if kind != DEVICE_PARTITION or len(blob) < BCD_PARTITION_DEVICE.size:
        return {"type": kind}
    dev = BCD_PARTITION_DEVICE.unpack(blob)
    if dev["style"] == STYLE_GPT:
        return {"type": kind, "style": "gpt",
                "partition_guid": guid_text(dev["partition"]),
                "disk_guid": guid_text(dev["disk"])}
    if dev["style"] == STYLE_MBR:
        signature = MBR_DISK.field(dev["disk"], "signature")
        return {"type": kind, "style": "mbr",
                "offset": MBR_PARTITION.field(dev["partition"], "offset"),
                "disk_signature": f"{signature:08x}"}
    return {"type": kind, "style": dev["style"]}

def _element(hive: Hive, obj: str, element: str) -> Any:
    key = hive.open_key(f"Objects\\{obj}\\Elements\\{element}")
    if key is None:
        return None
    v = key.value("Element")
    return None if v is None else v.data


def store_facts(hive: Hive, facts: Facts) -> None:
    """``bcd``: the boot manager and the OS loader it starts by default."""
    where = f"{hive.name}:Objects"
    try:
        objects = hive.open_key("Objects")
        if objects is None:
            facts.fail("bcd", f"{where} absent: not a BCD store")
            return
        types: dict[str, int] = {}
        for i, obj in enumerate(objects.subkeys()):
            if i >= limits.WINDOWS_MAX_ENTRIES:
                break
            desc = obj.subkey("Description")
            t = desc.value("Type") if desc is not None else None
            if t is not None and isinstance(t.data, int):
                types[obj.name.lower()] = t.data
        out: dict[str, Any] = {"objects": len(types)}
        bootmgr = BOOTMGR if types.get(BOOTMGR) == TYPE_BOOTMGR else None
        if bootmgr is not None:
            out["bootmgr_path"] = _element(hive, bootmgr, EL_APPLICATION_PATH)
            dev = _element(hive, bootmgr, EL_APPLICATION_DEVICE)
            out["bootmgr_device"] = device(dev) if isinstance(dev, bytes) else None
            default = _element(hive, bootmgr, EL_DEFAULT_OBJECT)
        else:
            default = None
        loaders = [g for g, t in types.items() if t == TYPE_OS_LOADER]
        loader: str | None = loaders[0] if loaders else None
        if isinstance(default, str) and default.lower() in loaders:
            loader = default.lower()
        if loader is None:
            facts.put("bcd", out, where)
            facts.fail("bcd loader", f"{where}: no Windows OS loader object (type 0x10200003)")
            return
        # The key name as stored (case preserved) for the element lookups.
        out["default_loader"] = loader
        path = _element(hive, loader, EL_APPLICATION_PATH)
        out["loader_path"] = path
        out["loader"] = path.rsplit("\\", 1)[-1].lower() if isinstance(path, str) else None
        out["description"] = _element(hive, loader, EL_DESCRIPTION)
        out["systemroot"] = _element(hive, loader, EL_SYSTEM_ROOT)
        for name, el in (("loader_device", EL_APPLICATION_DEVICE),
                         ("os_device", EL_OS_DEVICE)):
            dev = _element(hive, loader, el)
            out[name] = device(dev) if isinstance(dev, bytes) else None
    except ImageError as exc:
        facts.fail("bcd", f"{where}: {exc}", finding_id(exc))
        return
    facts.put("bcd", out, f"{where}\\{{bootmgr}}\\Elements\\23000003 -> "
                          f"{loader}\\Elements\\12000002, 21000001")
