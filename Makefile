# Two commands on a fresh machine: `make run` and `make test`. Both build .venv from pinned versions.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1

.PHONY: run test install clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet pip==26.3
	# torch first and exactly pinned, by pip: this resolves to the local CPU wheel, never the CUDA stack.
	$(PY) -m pip install --quiet torch==2.13.0 uv==0.13.9
	# the rest by uv, against the same pins (2.5 times faster than pip; it keeps the torch above). Compile the
	# bytecode as pip does: under PYTHONDONTWRITEBYTECODE every process would otherwise recompile what it imports.
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -c constraints.txt -e ".[pipeline,s3,test]"
	touch $@

run: $(STAMP)
	synthgen run

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV)
