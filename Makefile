# Fresh-machine entry points (Python 3.11 + pip). `make demo` runs the main job on the
# shipped default model; `make test` runs the test suite. Both set up .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all examples check-install clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# the main job: 1 ps of Langevin MD of ethanol on the shipped default model (log + trajectory in runs/demo)
demo: $(STAMP)
	$(VENV)/bin/nnp md examples/data/ethanol.xyz --ensemble nvt-langevin --temperature-K 300 \
		--timestep-fs 0.5 --time-ps 1 -o runs/demo --overwrite

test: $(STAMP)
	$(PY) -m pytest -m "not slow"

# every example as a user runs it, with the shipped models (CI runs this too)
examples: $(STAMP)
	cd examples && for script in quickstart relax_crystal md_water_box phonons_cu openmm_water lammps_cu_npt torchsim_metals ipi_water_pimd janus_relax; do \
		echo "== examples/$$script.py"; OMP_NUM_THREADS=1 ../$(PY) $$script.py || exit 1; done
	OMP_NUM_THREADS=1 $(PY) examples/train_and_export.py --epochs 2 --outdir $$(mktemp -d)

test-all: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) build *.egg-info

# A non-editable install into a throw-away venv, used from another directory.
check-install:
	set -e; dir=$$(mktemp -d); python3 -m venv $$dir/venv; \
	$$dir/venv/bin/python -m pip install --quiet .; \
	cd $$dir && $$dir/venv/bin/nnp --help >/dev/null && $$dir/venv/bin/nnp info && \
	$$dir/venv/bin/python -c "from ase.build import molecule; from nnpcalc import NNPCalculator; \
	a = molecule('H2O'); a.calc = NNPCalculator(); print('default model energy', a.get_potential_energy(), 'eV')"; \
	rm -rf $$dir
