"""Stage 2, inventory: what is there. The ELF census (and, later, package databases)."""

from scanner.inventory.census import Census, census_file, take_census
from scanner.inventory.elf import ElfParseError, ElfRecord, parse_elf

__all__ = ["Census", "ElfParseError", "ElfRecord", "census_file", "parse_elf", "take_census"]
