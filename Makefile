# Two commands on a fresh machine: `make demo` and `make test`. Each installs what it needs.
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test install system-packages lint bench postgresql redis

demo: install
	$(PY) -m compileall -q -j 0 -x demo_template src >/dev/null
	$(VENV)/bin/codefactory demo $(if $(DEMO_SERVE),--serve)

# Two workers (pytest-xdist): most tests wait on sandboxes, git and servers, so the suite takes
# about 11 minutes here instead of 18.
# Then the store's own tests again on PostgreSQL (the whole store-marked set takes about 8
# more minutes here, past what CI allows: README, Tests); whole runs on PostgreSQL are the
# chaos run's 200. The Celery chaos run is always on
# PostgreSQL and Redis, inside the first pass.
PG_TESTS := $(addprefix tests/integration/,test_store_postgresql.py test_store_schema.py \
  test_store_repository_ids.py test_audit_sql.py test_audit_migration.py \
  test_audit_events_stored.py test_metrics_store.py test_cli_open_store.py \
  test_delivery_writer.py test_webhooks_store_only.py test_engine_installed.py \
  test_identity_registry.py test_runs_wrappers_delegation.py test_insider_review.py \
  test_keys_trust.py test_audit_siem.py)

test: install postgresql redis
	$(PY) -m compileall -q -j 0 -x demo_template src >/dev/null
	$(PY) -m pytest -n 2 --dist worksteal
	CODEFACTORY_TEST_DATABASE=postgresql $(PY) -m pytest -n 2 --dist worksteal -m "store and not chaos" $(PG_TESTS)

# The local PostgreSQL 15 cluster the store tests use (127.0.0.1:5432, user postgres, trust
# auth), started when it is not running.
postgresql:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { \
	  command -v pg_ctlcluster >/dev/null || { echo "make test needs PostgreSQL (apt-get install postgresql)" >&2; exit 1; }; \
	  $(SUDO) pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	  for i in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	  pg_isready -h 127.0.0.1 -p 5432; }

# The Redis the Celery tests use as their broker (127.0.0.1:6379, nothing kept on disk),
# started when it does not answer.
redis:
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { \
	  command -v redis-server >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q redis-server; }; \
	  $(SUDO) mkdir -p /var/lib/redis /var/log/redis; \
	  $(SUDO) redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
	    --dir /var/lib/redis --logfile /var/log/redis/ci.log; \
	  for i in $$(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done; \
	  redis-cli -h 127.0.0.1 -p 6379 ping; }

lint: install
	$(VENV)/bin/ruff check src tests && $(VENV)/bin/ruff format --check src tests && $(VENV)/bin/mypy \
	  && $(VENV)/bin/lint-imports

# every benchmark, or one: `make bench B=sandbox` runs benchmarks/bench_sandbox.py
bench: install
	for f in benchmarks/bench_$(or $(B),*).py; do echo "== $$f"; $(PY) $$f || exit 1; done

install: system-packages $(VENV)/.installed

system-packages:
	@command -v bwrap >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q bubblewrap; }
	@command -v git >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q git; }
	@command -v socat >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q socat; }
	@command -v rg >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q ripgrep; }
	@ctags --version 2>/dev/null | grep -q "Universal Ctags" || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q universal-ctags; }
	@command -v softhsm2-util >/dev/null || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q softhsm2; }
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

# Bytecode is compiled once here: where PYTHONDONTWRITEBYTECODE is set (as on these
# machines), every process would otherwise compile every module it imports, every time.
$(VENV)/.installed: pyproject.toml uv.lock
	python3 -m uv sync --frozen --python python3 --compile-bytecode
	touch $@
