"""Every cap flightcheck puts on work it does for an untrusted target, in one place.

The target may have been built by an attacker: a sparse file claiming 16 GiB, a compressed
section inflating to gigabytes, a hash table claiming four billion chains, an ``include``
glob over links to ``.``. Each reader bounds its work by one of the named constants below;
hitting one raises :class:`LimitExceeded`, which every stage turns into an error record
naming the cap (``limit MAX_... (value) reached: ...``), so the result says what was not
read and why. The README's "Security model" section lists them.

Keep each constant here (not in the module that uses it): one table for people to read,
one place to change a cap.
"""

from __future__ import annotations

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


class LimitExceeded(Exception):
    """Work on one item of the target stopped at a named cap."""

    def __init__(self, cap: str, value: int | float, detail: str = "") -> None:
        self.cap, self.value, self.detail = cap, value, detail
        shown = f"{value:,}" if isinstance(value, int) else str(value)
        super().__init__(f"limit {cap} ({shown}) reached" + (f": {detail}" if detail else ""))


# ---- reading files -------------------------------------------------------------------
#: bytes read at a time when hashing or streaming a file (never the whole file at once)
READ_CHUNK = 1 * MiB

# ---- configuration files (boot, sysctl, modprobe, units, ld.so.conf...) -------------------
#: bytes read from one configuration file; a larger one is read up to the cap and reported
MAX_CONFIG_BYTES = 1 * MiB
#: lines read from one configuration file (a 1 MiB file of empty lines is 1M lines)
MAX_CONFIG_LINES = 50_000
#: characters in one line of a configuration file (a kernel command line is at most 4 KiB)
MAX_CONFIG_LINE = 64 * KiB
#: configuration files one reader reads (an ld.so.conf and its includes, the sysctl.d files,
#: the boot loader's files...): includes and globs cannot multiply the work without end
MAX_CONFIG_FILES = 512
#: bytes one reader reads over all its files together
MAX_CONFIG_TOTAL_BYTES = 8 * MiB
#: nesting of ``include`` (ld.so.conf) and ``configfile`` (GRUB) lines
MAX_INCLUDE_DEPTH = 16
#: paths one glob may match (also the candidates after each of its components)
MAX_GLOB_MATCHES = 10_000
#: directories one glob (or one reader's globs together) may visit: ``include /x/*/*/*/*``
#: over links to ``.`` visits exponentially many
MAX_GLOB_DIRS = 4_096
#: bytes of the target's ``/etc/ld.so.cache`` read (a large system's is under 1 MiB); a larger
#: one is not parsed cut short: its ld.so.conf folders stand in for it, and that is said
MAX_LD_SO_CACHE_BYTES = 64 * MiB
#: bytes of a program interpreter (glibc's ``ld.so``, about 250 KiB) read to find the search
#: folders compiled into it; past it the distribution's usual folders stand in, and that is said
MAX_INTERPRETER_BYTES = 64 * MiB

# ---- the ELF census -----------------------------------------------------------------------
#: apparent size of one file the census parses and hashes. Needed because hashing is linear in
#: the apparent size, which costs an attacker nothing (a sparse file, an inode claiming 256 GiB:
#: 16 GiB of holes hash for half a minute, 1 TiB for half an hour); the largest real ELF files
#: (browsers, CUDA and LLVM libraries, their separate debug info) stay well under it
MAX_ELF_FILE_BYTES = 4 * GiB
#: entries of one file's dynamic symbol table, and of its hash tables' buckets and chains (a
#: large real library, node or libLLVM, has under 80,000 dynamic symbols)
MAX_ELF_SYMBOLS = 1_000_000
#: bytes of one string table the census reads (.dynstr, DT_STRTAB, .shstrtab; node's is 5 MiB)
MAX_ELF_STRTAB_BYTES = 64 * MiB
#: program headers of one file (PN_XNUM lets a core dump claim four billion)
MAX_ELF_PROGRAM_HEADERS = 100_000
#: entries of one dynamic segment read before its DT_NULL (real files have under 100)
MAX_ELF_DYNAMIC_ENTRIES = 65_536
#: bytes one SHF_COMPRESSED section may inflate to
MAX_ELF_INFLATED_BYTES = 64 * MiB
#: how many times its compressed size one SHF_COMPRESSED section may inflate to (zlib allows
#: over 1,000; tables of symbols and strings compress about 3 to 10 times)
MAX_ELF_INFLATE_RATIO = 100

# ---- disk images ----------------------------------------------------------------------------
#: images in one qcow2 backing chain, the image named first included (QEMU's own deepest real
#: chains are snapshots of snapshots, a few dozen at most); a longer one is refused whole
MAX_BACKING_CHAIN = 64
#: bytes of holes (ranges no extent or block of the file system backs, and the slack between
#: the last extent and the size an inode claims) that reading one file inside an image may
#: return. Needed because an inode may claim 256 GiB over one block: reading it whole (a
#: hash) would cost minutes of zeros; a real program or library has no gigabyte of holes
MAX_IMAGE_HOLE_BYTES = 1 * GiB
#: bytes one read of a file inside an image may return at once (``read()`` of a whole file
#: claiming 256 GiB must not try to allocate it); readers stream in READ_CHUNK pieces
MAX_IMAGE_READ_BYTES = 256 * MiB
#: bytes of a vmdk descriptor (a text file naming the extents; real ones are under 4 KiB)
MAX_VMDK_DESCRIPTOR_BYTES = 64 * KiB
#: seconds the libguestfs appliance may take to boot under KVM before its qemu is killed
#: and it is launched again under TCG (a KVM launch takes seconds; under some nested
#: virtualisation it hangs at boot for ever instead of failing). Not applied when the user
#: sets LIBGUESTFS_BACKEND_SETTINGS; FLIGHTCHECK_GUESTFS_KVM_LAUNCH_SECONDS overrides it
GUESTFS_KVM_LAUNCH_SECONDS = 60

# ---- package databases (dpkg, rpm, apk, opkg) and repositories -----------------------------------------
#: bytes of dpkg's ``status`` file read (a Debian system of 5,000 packages has about 10 MiB)
MAX_DPKG_STATUS_BYTES = 64 * MiB
#: bytes of apk's ``installed`` database read (it holds every package's file list inline: a
#: large Alpine system of 1,500 packages has about 15 MiB); a larger one is read up to the cap,
#: whole paragraphs only, and said
MAX_APK_INSTALLED_BYTES = 64 * MiB
#: bytes of opkg's ``status`` file read (OpenWrt's of 500 packages is under 100 KiB; Yocto's of
#: 5,000 about 5 MiB)
MAX_OPKG_STATUS_BYTES = 64 * MiB
#: bytes of one opkg ``info/<package>.control`` read (real ones are under 4 KiB); its License
#: field is all that is read of it
MAX_OPKG_CONTROL_BYTES = 1 * MiB
#: bytes of the target's os-release (or redhat-release, debian_version) read: real ones are
#: under 1 KiB; its fields name the distribution in every purl
MAX_OS_RELEASE_BYTES = 64 * KiB
#: paths of one package database looked up in the target to tell whether its file lists carry
#: an install prefix the target lacks (an SDK installed with ``rpm --relocate``, copied without
#: it); each of the candidate prefixes costs as many lookups again
MAX_RELOCATION_SAMPLE = 1000
#: candidate prefixes tried (the most common leading folders of the paths not found) ...
MAX_RELOCATION_CANDIDATES = 8
#: ... each at most this many folders deep (``/opt/eldk-5.6/powerpc/rootfs`` is 4)
MAX_RELOCATION_PREFIX_DEPTH = 6
#: fewer paths than this in a database: no prefix is sought (too few to tell)
MIN_RELOCATION_SAMPLE = 8
#: characters of one package version (a dpkg ``Version``): real ones are under 100; 5,000
#: digits of epoch cost Python's ``int()`` a ValueError and every report a line of garbage
MAX_PACKAGE_VERSION_CHARS = 256
#: characters of one file path a package lists (PATH_MAX: a longer path names no file, and
#: 1 MiB directory names times 150,000 base names would cost 150 GB)
MAX_PACKAGE_PATH_CHARS = 4096
#: characters of file paths built for one package (an rpm header, a dpkg ``.list``; the
#: largest real packages list about 10 MiB)
MAX_PACKAGE_FILES_CHARS = 64 * MiB
#: characters of file paths built for one database (or one repository's filelists) in all
#: (a whole distribution installed is about 100 MiB)
MAX_DATABASE_FILES_CHARS = 512 * MiB
#: nesting of parentheses in one license expression (real ones nest two or three deep; the
#: parsers recurse per level)
MAX_LICENSE_NESTING = 32
#: bytes one repository metadata document (primary, filelists) may decompress to
MAX_REPO_METADATA_BYTES = 8 * GiB
#: how many times its compressed size one metadata document may decompress to (real ones:
#: 5 to 15; gzip allows about 1,000)
MAX_REPO_INFLATE_RATIO = 100
#: bytes of metadata XML between two ``<``: one tag or one text (a package description is a
#: few KiB); the parser holds a whole token (and ElementTree a whole text) in memory
MAX_REPO_XML_TOKEN_BYTES = 1 * MiB
#: nesting of elements in a metadata document (real ones: 4)
MAX_REPO_XML_DEPTH = 64
#: elements of one ``<package>`` (and outside packages, in all): one per file in filelists
MAX_REPO_PACKAGE_ELEMENTS = 1_000_000
#: decompressed bytes of one ``<package>`` element
MAX_REPO_PACKAGE_BYTES = 64 * MiB
#: packages one repository's metadata may list (Fedora's whole distribution: about 75,000)
MAX_REPO_PACKAGES = 500_000
#: entries of one file tag of an rpm header (BASENAMES, DIRNAMES, DIRINDEXES, OLDFILENAMES):
#: real packages have under 200,000 files; a 256 MiB header of empty strings claims 256
#: million, a list of pointers alone larger than the memory a scan has
MAX_RPM_HEADER_FILES = 1_000_000

# ---- origins of unowned ELF files (scanner/inventory/origins/) --------------------------------
#: folders listed looking for Python site folders above unowned ELF files (each ancestor once)
MAX_ORIGIN_FOLDERS = 50_000
#: unowned ELF files opened to read what they declare of their origin
MAX_ORIGIN_FILES = 100_000
#: bytes of one origin section (.note.package, .go.buildinfo, .dep-v0), inflated or not
#: (real ones: under 100 KiB)
MAX_ORIGIN_SECTION_BYTES = 8 * MiB
#: modules or crates one file may declare (a large Go program: a few hundred)
MAX_ORIGIN_MODULES = 20_000
#: installed distributions read in one site folder
MAX_PYTHON_DISTRIBUTIONS = 20_000
#: bytes of one METADATA / PKG-INFO file (real ones: under 100 KiB, the long description)
MAX_PYTHON_METADATA_BYTES = 4 * MiB
#: bytes of one RECORD / installed-files.txt (a large wheel: a few MiB)
MAX_PYTHON_RECORD_BYTES = 32 * MiB

# ---- Berkeley DB (scanner/inventory/bdb.py) and rpm database counts -------------------------
#: pages of one Berkeley DB file walked (rpm's ``Packages``: a distribution of 5,000 packages
#: is about 60,000 pages of 4 KiB; a 2 GiB file of 512-byte pages is 4 million)
MAX_BDB_PAGES = 4_194_304
#: bytes of one Berkeley DB record (an rpm header: librpm's own ``headerMaxbytes`` is 256 MiB)
MAX_BDB_RECORD_BYTES = 256 * MiB
#: levels of one off-page duplicate tree descended (Berkeley DB's trees of a 2 GiB file are
#: under 10 deep)
MAX_BDB_TREE_DEPTH = 32
#: unreadable headers of one rpm database each said in an error record of its own; the rest
#: are counted in one record (a hostile Berkeley DB file of 64 MiB holds a million records)
MAX_RPM_HEADER_ERRORS = 1_000
