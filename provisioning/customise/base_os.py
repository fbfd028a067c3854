"""Raspberry Pi OS's own first-boot customisation, in the format the image uses.

Raspberry Pi OS has changed how it takes settings from the boot partition:

- ``firstrun.sh`` started by ``systemd.run=`` on the kernel command line
  (Raspberry Pi Imager's format up to Bookworm images of 2024);
- ``custom.toml``, read by ``raspberrypi-sys-mods``' ``firstboot``/``init_config``
  (Bookworm images from 2024-11 on);
- cloud-init ``user-data`` / ``network-config`` / ``meta-data`` (images that ship
  those files on the boot partition).

:func:`detect` decides from what is on the boot partition; :func:`render` gives
the files to write (hostname, SSH key, time zone). The Wi-Fi country is always
set as ``cfg80211.ieee80211_regdom=XX`` on the kernel command line, as the
Imager does, because none of the formats sets it without also joining a network.
"""

from __future__ import annotations

import json
import re
import shlex
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass

from provisioning.errors import ProvisionError

FORMATS = ("cloud-init", "custom.toml", "firstrun", "none")
CLOUD_INIT_FILES = ("user-data", "meta-data", "network-config")
FIRSTBOOT_INIT = "init=/usr/lib/raspberrypi-sys-mods/firstboot"
#: On the boot partition of a Debian base made by ``meshhub-provision image base``
#: (provisioning.image.base.BASE_INFO): no Raspberry Pi OS first-boot tooling there.
MESHHUB_BASE = "meshhub-base.txt"
#: First Raspberry Pi OS release whose firstboot reads custom.toml.
CUSTOM_TOML_SINCE = "2024-11-19"
_SYSTEMD_RUN = ("systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot "
                "systemd.unit=kernel-command-line.target")
_SSH_KEY = re.compile(r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|"
                      r"sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)"
                      r" [A-Za-z0-9+/=]+( [^\n]*)?")


class BaseOsError(ProvisionError, ValueError):
    """A base-OS setting (SSH key, time zone, format) is not usable; the message says which."""


@dataclass(frozen=True)
class OsSettings:
    """What the base system should set at its first boot."""

    hostname: str
    wifi_country: str
    ssh_keys: tuple[str, ...] = ()
    timezone: str | None = None
    user: str = "pi"


def check_ssh_keys(text: str, source: str) -> tuple[str, ...]:
    """The public keys in an ``authorized_keys``-style text; raise BaseOsError if none/bad."""
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not _SSH_KEY.fullmatch(line):
            raise BaseOsError(f"{source}:{number}: not an SSH public key (expected a line such "
                              "as 'ssh-ed25519 AAAA... you@laptop'; give the .pub file, never "
                              "the private key)")
        keys.append(line)
    if not keys:
        raise BaseOsError(f"{source}: no SSH public key in the file")
    return tuple(keys)


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone such as ``Europe/Berlin``; else raise."""
    if name not in zoneinfo.available_timezones():
        raise BaseOsError(f"--timezone {name!r}: not a known time zone; use a name such as "
                          "'Europe/Berlin' or 'UTC' (see 'timedatectl list-timezones')")
    return name


def detect(names: list[str], cmdline: str | None, issue: str | None) -> str:
    """The customisation format of a boot partition listing ``names``.

    ``cmdline`` and ``issue`` are the texts of ``cmdline.txt`` and ``issue.txt``
    (``None`` when absent).
    """
    lower = {n.lower() for n in names}
    if is_meshhub_base(names):
        # Debian's arm64 base has a Pi's cmdline.txt but neither raspberrypi-sys-mods nor
        # /boot/firstrun.sh: systemd.run= there would stop the boot short of multi-user.
        return "none"
    if any(n in lower for n in CLOUD_INIT_FILES):
        return "cloud-init"
    if cmdline is None:
        return "none"
    released = re.search(r"\d{4}-\d{2}-\d{2}", issue or "")
    if "custom.toml" in lower or (FIRSTBOOT_INIT in cmdline and released
                                  and released.group(0) >= CUSTOM_TOML_SINCE):
        return "custom.toml"
    return "firstrun"


def is_meshhub_base(names: list[str]) -> bool:
    """True for the boot partition of a Debian base made by ``image base`` (its marker file)."""
    return MESHHUB_BASE in {n.lower() for n in names}


def edit_cmdline(cmdline: str, settings: OsSettings, fmt: str) -> str:
    """``cmdline.txt`` with our regulatory domain (and, for firstrun, ``systemd.run``)."""
    words = [w for w in cmdline.split()
             if not w.startswith(("cfg80211.ieee80211_regdom=", "systemd.run",
                                  "systemd.unit=kernel-command-line.target"))]
    words.append(f"cfg80211.ieee80211_regdom={settings.wifi_country}")
    if fmt == "firstrun":
        words.extend(_SYSTEMD_RUN.split())
    return " ".join(words) + "\n"


def render(fmt: str, settings: OsSettings) -> dict[str, bytes]:
    """The boot-partition files (other than cmdline.txt) for format ``fmt``."""
    renderers: dict[str, Callable[[OsSettings], dict[str, str]]] = {
        "cloud-init": _cloud_init, "custom.toml": _custom_toml, "firstrun": _firstrun,
        "none": lambda _s: {},
    }
    if fmt not in renderers:
        raise BaseOsError(f"unknown base OS format {fmt!r}; use one of {', '.join(FORMATS)}")
    return {name: text.encode("utf-8") for name, text in renderers[fmt](settings).items()}


def _json(value: object) -> str:
    """A JSON string literal: also a valid YAML and TOML basic string."""
    return json.dumps(value, ensure_ascii=False)


def _cloud_init(s: OsSettings) -> dict[str, str]:
    lines = ["#cloud-config", "# Written by meshhub-provision customise.",
             f"hostname: {_json(s.hostname)}", "manage_etc_hosts: true"]
    if s.timezone:
        lines.append(f"timezone: {_json(s.timezone)}")
    if s.ssh_keys:
        lines += ["users:", f"  - name: {_json(s.user)}",
                  "    groups: users,adm,dialout,audio,netdev,video,plugdev,input,gpio,spi,i2c,"
                  "sudo",
                  "    shell: /bin/bash", "    lock_passwd: true",
                  "    sudo: ALL=(ALL) NOPASSWD:ALL", "    ssh_authorized_keys:"]
        lines += [f"      - {_json(key)}" for key in s.ssh_keys]
        lines += ["ssh_pwauth: false", "runcmd:", "  - [systemctl, enable, --now, ssh]"]
    return {"user-data": "\n".join(lines) + "\n"}


def _custom_toml(s: OsSettings) -> dict[str, str]:
    lines = ["# Written by meshhub-provision customise; read once by Raspberry Pi OS's firstboot.",
             "config_version = 1", "", "[system]", f"hostname = {_json(s.hostname)}"]
    if s.ssh_keys:
        lines += ["", "[user]", f"name = {_json(s.user)}",
                  '# "!" is a locked password: log in with the SSH key only.',
                  'password = "!"', "password_encrypted = true",
                  "", "[ssh]", "enabled = true", "password_authentication = false",
                  "authorized_keys = [" + ", ".join(_json(k) for k in s.ssh_keys) + "]"]
    if s.timezone:
        lines += ["", "[locale]", f"timezone = {_json(s.timezone)}"]
    return {"custom.toml": "\n".join(lines) + "\n"}


def _firstrun(s: OsSettings) -> dict[str, str]:
    q = shlex.quote
    custom = "/usr/lib/raspberrypi-sys-mods/imager_custom"
    lines = ["#!/bin/bash", "# Written by meshhub-provision customise, in the form Raspberry Pi "
             "Imager uses;", "# started once by systemd.run= on the kernel command line.",
             "set +e", f"NEW_HOSTNAME={q(s.hostname)}",
             'CURRENT_HOSTNAME=$(tr -d " \\t\\n\\r" </etc/hostname)',
             f"if [ -f {custom} ]; then", f'   {custom} set_hostname "$NEW_HOSTNAME"', "else",
             '   echo "$NEW_HOSTNAME" >/etc/hostname',
             '   sed -i "s/127.0.1.1.*$CURRENT_HOSTNAME/127.0.1.1\\t$NEW_HOSTNAME/g" /etc/hosts',
             "fi"]
    if s.ssh_keys:
        keys = "\n".join(s.ssh_keys)
        lines += [f"SSH_KEYS={q(keys)}", f"SSH_USER={q(s.user)}",
                  "if [ -x /usr/lib/userconf-pi/userconf ]; then",
                  "   /usr/lib/userconf-pi/userconf \"$SSH_USER\" '!'",
                  "fi",
                  'USER_HOME=$(getent passwd "$SSH_USER" | cut -d: -f6)',
                  'if [ -n "$USER_HOME" ]; then',
                  '   install -o "$SSH_USER" -m 700 -d "$USER_HOME/.ssh"',
                  '   printf "%s\\n" "$SSH_KEYS" >"$USER_HOME/.ssh/authorized_keys"',
                  '   chown "$SSH_USER": "$USER_HOME/.ssh/authorized_keys"',
                  '   chmod 600 "$USER_HOME/.ssh/authorized_keys"', "fi",
                  "echo 'PasswordAuthentication no' >/etc/ssh/sshd_config.d/meshhub.conf",
                  "systemctl enable ssh"]
    lines += [f"if command -v raspi-config >/dev/null; then raspi-config nonint do_wifi_country "
              f"{q(s.wifi_country)}; fi"]
    if s.timezone:
        lines += [f"if [ -f {custom} ]; then", f"   {custom} set_timezone {q(s.timezone)}",
                  "else", "   rm -f /etc/localtime",
                  f"   echo {q(s.timezone)} >/etc/timezone",
                  "   dpkg-reconfigure -f noninteractive tzdata", "fi"]
    lines += ['BOOT=$(dirname "$(readlink -f "$0")")',
              'rm -f "$BOOT/firstrun.sh" /boot/firstrun.sh /boot/firmware/firstrun.sh',
              "for f in \"$BOOT/cmdline.txt\" /boot/firmware/cmdline.txt /boot/cmdline.txt; do",
              "   [ -f \"$f\" ] && sed -i 's| systemd.run.*||g' \"$f\"", "done", "exit 0"]
    return {"firstrun.sh": "\n".join(lines) + "\n"}
