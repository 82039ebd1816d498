.PHONY: demo test test-slow bench lint

demo:
	./scripts/setup.sh && .venv/bin/rsir demo

test:
	./scripts/setup.sh --test && .venv/bin/python -m pytest -q

test-slow:
	./scripts/setup.sh --test && .venv/bin/python -m pytest -q -m slow

bench:
	./scripts/setup.sh && .venv/bin/python benchmarks/run_all.py

lint:  # style, the import contracts (layers, pyproject [tool.importlinter]) and the type check
	.venv/bin/ruff check src tests benchmarks && .venv/bin/ruff format --check src tests benchmarks
	PYTHONPATH=src .venv/bin/lint-imports
	.venv/bin/mypy
