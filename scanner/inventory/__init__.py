"""Stage 2, inventory: what is there. The ELF census (:mod:`scanner.inventory.census`) and the
package databases, each package manager behind one reader interface
(:mod:`scanner.inventory.readers`)."""

from scanner.inventory.census import Census, census_file, take_census
from scanner.inventory.elf import ElfParseError, ElfRecord, parse_elf
from scanner.inventory.readers import read_package_databases

__all__ = ["Census", "ElfParseError", "ElfRecord", "census_file", "parse_elf", "read_package_databases", "take_census"]
