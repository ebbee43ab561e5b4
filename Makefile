# The two set-up commands: `make devnet` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test devnet sim clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

devnet: $(STAMP)
	$(BIN)/stromledger devnet --dir devnet-$$(date -u +%Y%m%dT%H%M%SZ)

sim: $(STAMP)
	$(BIN)/stromledger sim --validators 4 --byzantine 1 --seeds 200 --faults all

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
