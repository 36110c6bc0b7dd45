# flightcheck: two commands from a fresh clone.
#   make scan   set everything up, then scan this machine into out/
#   make test   set everything up, then run the whole test suite
#
# Set-up is idempotent: Debian packages are installed only when missing, the
# virtualenv is (re)built only when pyproject.toml changes.

SHELL      := /bin/bash
PYTHON     ?= /usr/bin/python3.11
VENV       := .venv
VPY        := $(VENV)/bin/python
STAMP      := $(VENV)/.installed
OUT        ?= out
ROOT       ?= /
SCAN_ARGS  ?= --format html,spdx-json,spdx-tv,sarif,junit
PYTEST_ARGS ?=

# Debian packages flightcheck and its tests need:
#  python3.11 + venv  the interpreter Debian's python3-rpm is built for (-dev: headers to build libvirt-python)
#  rpm python3-rpm    librpm and its bindings (the PyPI "rpm" shim imports them)
#  gcc libc6-dev      compile the fixture programs and libraries
#  pax-utils          scanelf/lddtree, the benchmark's reference tools
#  file binutils      readelf, used by tests as an independent oracle
#  util-linux         setpriv, to run a scan as an unprivileged user in tests
#  gcc-aarch64-linux-gnu libc6-dev-arm64-cross  a real ARM root for the foreign-architecture test
#  musl musl-dev musl-tools  a real musl root (musl-gcc and its loader) for the musl test
#  libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core  weasyprint's text layout and a font for the PDF
#  chromium chromium-driver poppler-utils  the HTML report opened in a real browser, the PDF
#                     turned into pages and text, in tests
#  qemu-utils fdisk e2fsprogs xfsprogs  real disk images for the image tests (qemu-img,
#                     sfdisk, mkfs.ext4 -d, mkfs.xfs -p), built without root
#  libvirt-dev pkg-config  to build libvirt-python (libvirt's client library and its
#                     test:/// driver come with it)
#  python3-guestfs linux-image-amd64  the libguestfs image backend (LGPL) and the kernel its
#                     appliance boots; the bindings are linked into the virtualenv below
#  createrepo-c nginx-light  real YUM/DNF repositories for the repo tests, served on 127.0.0.1
#                     by nginx (range requests, autoindex pages) started and stopped by the tests
#  postgresql         a real PostgreSQL server for the scan history tests, started on 127.0.0.1
#                     by the tests (initdb, pg_ctl) and stopped afterwards
#  strace             sees what C libraries (librpm, sqlite) open, for the no-host-reads test
#  libvirt-daemon-system libvirt-clients dnsmasq-base qemu-system-x86  a real libvirtd (qemu:///system)
#                     and virtlogd, started and stopped by the suite (tests/libvirt_harness.py), whose
#                     domains are defined on the fixture images; one runs under TCG; openssh-server:
#                     a real sshd the fleet tests start on 127.0.0.1 to reach it as qemu+ssh://
#  golang-go rustc    a Go program (build info) and a Rust program (cargo-auditable data) built
#                     for the origins tests (fixtures/build_origins.py)
#  db5.3-util         db5.3_load / db5.3_dump write and read the Berkeley DB rpm databases of
#                     tests/test_bdb.py (hash and B-tree, both byte orders: fixtures/build_bdb.py)
APT_PKGS := python3.11 python3.11-venv python3.11-dev python3-rpm rpm gcc libc6-dev pax-utils file binutils util-linux \
            gcc-aarch64-linux-gnu libc6-dev-arm64-cross musl musl-dev musl-tools \
            libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core chromium chromium-driver poppler-utils \
            qemu-utils fdisk e2fsprogs xfsprogs libvirt-dev pkg-config python3-guestfs linux-image-amd64 \
            createrepo-c nginx-light postgresql strace golang-go rustc \
            libvirt-daemon-system libvirt-clients dnsmasq-base qemu-system-x86 openssh-server \
            db5.3-util

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: scan test lint typecheck setup system-packages venv bench clean fixtures docs

scan: setup
	$(VENV)/bin/flightcheck scan $(ROOT) -o $(OUT) $(SCAN_ARGS); rc=$$?; \
	  echo "reports written to $(OUT)/ (exit $$rc)"; [ $$rc -le 1 ]

test: setup
	$(VPY) -m pytest $(PYTEST_ARGS)

# CI gates on both: ruff over the repository, mypy --strict over scanner/ (pyproject.toml)
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

typecheck: setup
	$(VENV)/bin/mypy

bench: setup
	$(VPY) bench/run.py
	$(VPY) bench/peers.py --host

docs: setup
	docs/make-images.sh

fixtures: setup
	$(VPY) fixtures/build_rpmroot.py

setup: system-packages venv

system-packages:
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Debian's libguestfs bindings are not on PyPI: link them into the virtualenv
DIST_PY  := /usr/lib/python3/dist-packages
SITE     := $(VENV)/lib/python3.11/site-packages

venv: $(STAMP)
	@for f in $(DIST_PY)/guestfs.py $(DIST_PY)/libguestfsmod.cpython-311-*.so; do \
	  [ -e "$$f" ] && ln -sf "$$f" $(SITE)/; done; true

$(STAMP): pyproject.toml
	@[ -x $(VPY) ] || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

clean:
	rm -rf $(VENV) .cache out build *.egg-info
