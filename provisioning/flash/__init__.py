"""Writing node images to SD cards and USB sticks, safely and verified.

Public API (``docs/flashing.md`` is the volunteer's guide)::

    parse_lsblk, assess, run_lsblk   which devices may be written, and why not
    open_image                       stream .img/.gz/.xz/.zst/.zip
    Target                           the device (or a file) being written
    flash, write_image, verify       write first MiB last, read back, compare SHA-256
"""

from __future__ import annotations

from provisioning.flash.devices import Assessment, Device, assess, parse_lsblk, run_lsblk
from provisioning.flash.source import ImageSource, open_image
from provisioning.flash.target import Target
from provisioning.flash.writer import FlashResult, flash, verify, write_image

__all__ = ["Assessment", "Device", "FlashResult", "ImageSource", "Target", "assess", "flash",
           "open_image", "parse_lsblk", "run_lsblk", "verify", "write_image"]
