# mcagent: make install | make run | make test | make proto | make bench
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SOFTHSM_MODULE ?= /usr/lib/softhsm/libsofthsm2.so
P11KIT_CLIENT ?= /usr/lib/$(shell uname -m)-linux-gnu/pkcs11/p11-kit-client.so
PASSWORD_FILE ?= $(HOME)/.config/mcagent/keystore-password

.PHONY: install run test proto system-deps buf clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The daemon on its embedded defaults: SQLite and the file key store in the data directory,
# Unix socket. The key store password comes from MCAGENT_KEYSTORE_PASSWORD or, for a first
# try on a workstation, from a random one generated into $(PASSWORD_FILE) (mode 0600).
run: install
	@if [ -z "$$MCAGENT_KEYSTORE_PASSWORD" ] && [ ! -f "$(PASSWORD_FILE)" ]; then \
	  mkdir -p "$$(dirname "$(PASSWORD_FILE)")"; \
	  (umask 077; $(PY) -c 'import secrets; print(secrets.token_urlsafe(24) + "aA1!")' > "$(PASSWORD_FILE)"); \
	  echo "generated a key store password in $(PASSWORD_FILE) (mode 0600)"; \
	fi
	@if [ -n "$$MCAGENT_KEYSTORE_PASSWORD" ]; then \
	  exec $(VENV)/bin/mcagent serve $(SERVE_ARGS); \
	else \
	  exec $(VENV)/bin/mcagent serve --keystore-password-file "$(PASSWORD_FILE)" $(SERVE_ARGS); \
	fi

# Tools the tests drive: SoftHSM2 (softhsm2-util + module), pkcs11-tool, openssl, faketime, xmlsec1,
# p11-kit (`p11-kit server` and its client module: a token reached like a network HSM, and
# the bench's PKCS#11 remoting peer),
# and the PostgreSQL server (tests/pg.py runs throwaway clusters; Debian keeps initdb off PATH).
system-deps:
	@missing=""; \
	command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v softhsm2-util >/dev/null && [ -f $(SOFTHSM_MODULE) ] || missing="$$missing softhsm2"; \
	command -v p11-kit >/dev/null || missing="$$missing p11-kit"; \
	ls /usr/lib/*/pkcs11/p11-kit-client.so >/dev/null 2>&1 || missing="$$missing p11-kit-modules"; \
	command -v pkcs11-tool >/dev/null || missing="$$missing opensc"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v faketime >/dev/null || missing="$$missing faketime"; \
	command -v xmlsec1 >/dev/null || missing="$$missing xmlsec1"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing:$$missing. Run: sudo apt-get install -y$$missing" >&2; exit 1; \
	  fi; \
	fi

test: install system-deps buf
	$(PY) -m pytest $(PYTEST_ARGS)

# buf (the .proto linter) is a Go binary; npm ships it prebuilt. tests/test_proto_lint.py runs it.
BUF := $(VENV)/buf/node_modules/.bin/buf
buf: $(BUF)
$(BUF):
	@command -v buf >/dev/null || { command -v npm >/dev/null && npm install --quiet --no-audit --no-fund --prefix $(VENV)/buf @bufbuild/buf >/dev/null; } || \
	  echo "buf not installed (no npm): tests/test_proto_lint.py will skip (fail under CI)" >&2

proto: install
	$(PY) -m mcagent.agent.api.generate

# Signing throughput against the token's limit, a bare grpcio server, ssh-agent and p11-kit remoting;
# then workers 2, PostgreSQL and two daemons on one PostgreSQL (issue #11); rewrites bench/RESULTS.md
# (about 20-25 minutes on 2 cores; MCAGENT_BENCH_SMOKE=1 for a seconds-long check of the harness,
# MCAGENT_BENCH_ONLY=workers,postgres for some sections).
bench: install system-deps
	@command -v ssh-agent >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-client >/dev/null; \
	  else echo "missing: openssh-client. Run: sudo apt-get install -y openssh-client" >&2; exit 1; fi; }
	@$(PY) -m pip show py-spy >/dev/null 2>&1 || $(PY) -m pip install --quiet py-spy  # the profile in the report
	MCAGENT_BENCH_P11KIT_CLIENT=$(P11KIT_CLIENT) $(PY) -m bench.sign_bench

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
