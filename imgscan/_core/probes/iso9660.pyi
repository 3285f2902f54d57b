# The probe is a C function (iso9660.pxd), called from filesystems.probe_volume.
from imgscan._core.cstruct import CStruct

VOLUME_DESCRIPTOR: CStruct
BOOT_RECORD: CStruct
VALIDATION_ENTRY: CStruct
SECTION_HEADER: CStruct
