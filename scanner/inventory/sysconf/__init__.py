"""The system configuration the boot and IPv6 rules judge, read from the target once into
a typed, frozen record (:class:`SystemConfig`), so that the checks evaluate records and
never touch the target.

The target is untrusted, so every reader reads what it can and says what it could not
(:mod:`.text`): a file that could not be read, or only up to some line, is an
:class:`Unreadable` record next to what was read, and the rules decide: ``fail`` when what
was read proves a failure whatever the rest holds, ``error`` when the answer depends on
what could not be read, ``pass`` only when nothing it depends on is missing. A malformed
file can therefore never make a verdict better. Every reader reads within a
:class:`~scanner.target.base.Budget` of its own (files, bytes, glob folders) and never
raises; each file is read once.

Modules: :mod:`.text` (lines, :class:`Unreadable`, later-wins :class:`Assignments`),
:mod:`.boot` (boot loaders), :mod:`.network` (sysctl, modprobe, initscripts,
NetworkManager, hosts, libvirt networks), :mod:`.systemd` (units).
"""

from __future__ import annotations

from dataclasses import dataclass

from scanner.inventory.sysconf.boot import (
    DEFAULTS,
    ENTRIES,
    LOADER,
    NOTE,
    USER_CFG,
    BootConfig,
    BootEntry,
    FileMode,
    boot_config,
    boot_file_modes,
)
from scanner.inventory.sysconf.network import (
    LibvirtNetwork,
    LibvirtNetworks,
    initscripts_files,
    libvirt_networks,
    modprobe_files,
    networkmanager_files,
    sysctl_settings,
)
from scanner.inventory.sysconf.systemd import Systemd, UnitExec, is_systemd, systemd_facts, unit_exec_start
from scanner.inventory.sysconf.text import (
    Assignments,
    ConfigFiles,
    ConfigText,
    Line,
    Unreadable,
    glob,
    present,
    read_config,
    read_if_present,
)
from scanner.target import RootFS

__all__ = [
    "DEFAULTS", "ENTRIES", "LOADER", "NOTE", "USER_CFG", "Assignments", "BootConfig", "BootEntry", "ConfigFiles",
    "ConfigText", "FileMode", "Line", "LibvirtNetwork", "LibvirtNetworks", "SystemConfig", "Systemd", "UnitExec",
    "Unreadable", "boot_config", "boot_file_modes", "glob", "is_systemd", "present", "read_config",
    "read_if_present", "read_system_config", "sysctl_settings", "unit_exec_start",
]


@dataclass(frozen=True)
class SystemConfig:
    """Everything the boot and IPv6 rules read of a system target, as read from it."""

    boot: BootConfig
    #: owner and mode of the boot loader files (not the BootLoaderSpec entries), in order
    boot_modes: tuple[FileMode | Unreadable, ...]
    systemd: Systemd | None  # None: the target does not run systemd
    sysconfig_init: ConfigText | None  # /etc/sysconfig/init (None: absent)
    inittab: ConfigText | None  # /etc/inittab (None: absent)
    sysctl: Assignments
    modprobe: ConfigFiles
    initscripts: ConfigFiles
    networkmanager: ConfigFiles
    hosts: ConfigText | None  # /etc/hosts (None: absent)
    libvirt_networks: LibvirtNetworks


def read_system_config(fs: RootFS) -> SystemConfig:
    """Read the target's system configuration once; never raises on what the target
    holds (what could not be read is in the records)."""
    boot = boot_config(fs)
    return SystemConfig(
        boot=boot,
        boot_modes=boot_file_modes(fs, boot),
        systemd=systemd_facts(fs),
        sysconfig_init=read_if_present(fs, "/etc/sysconfig/init"),
        inittab=read_if_present(fs, "/etc/inittab"),
        sysctl=sysctl_settings(fs),
        modprobe=modprobe_files(fs),
        initscripts=initscripts_files(fs),
        networkmanager=networkmanager_files(fs),
        hosts=read_if_present(fs, "/etc/hosts"),
        libvirt_networks=libvirt_networks(fs),
    )
