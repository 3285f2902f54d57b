"""Guest operating system inspection: what is installed inside the disk, read offline.

Only Windows so far (:mod:`imgscan.guest.windows`): the facts of the JSON
contract's ``windows`` object, found the way libguestfs finds them, each
with the file or registry value it came from. Nothing here is imported
until an image has an NTFS volume, so ``imgscan info`` on other disks pays
nothing for it.
"""
