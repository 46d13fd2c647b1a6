# The front door. `make` prints the grouped help.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
DATA ?= ../shared/data/labeled_data.csv
ENV ?= dev
MODEL ?= v2
export PYTHONHASHSEED := 0
export OPENBLAS_NUM_THREADS := 1
export OMP_NUM_THREADS := 1
export SAM_CLI_TELEMETRY := 0
# Offline tools (tests, sam build/validate) need some region; a deploy uses the profile's.
OFFLINE := AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1}
export HATE_DATA ?= $(abspath $(DATA))

##@ Start here
help: ## Show this help, grouped
	@awk 'BEGIN {FS = ":.*##"} /^##@/ {printf "\n\033[1m%s\033[0m\n", substr($$0, 5)} \
	  /^[a-zA-Z0-9_-]+:.*##/ {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo

REPORTS := reports
demo: $(STAMP) ## The main job, offline: rehearse the v2 -> v3 canary (promoted), then a slow one (rolled back)
	@mkdir -p $(REPORTS)
	@echo "== 1/2  rehearsal: v2 -> v3, Canary10Percent5Minutes at 30x speed, 5 req/s, logs 2 min late (expected: PROMOTED)"
	$(PY) -m emulator rehearse --baseline v2 --canary v3 --html $(REPORTS)/rehearsal-v2-v3.html
	@echo
	@echo "== 2/2  rehearsal: v2 -> v3 with a canary 10x slower once the hook is done (expected: ROLLED BACK)"
	@$(PY) -m emulator rehearse --baseline v2 --canary v3 --fault latency=10@hook \
	  --html $(REPORTS)/rehearsal-v2-v3-slow.html; status=$$?; \
	  test $$status -eq 3 || { echo "demo: expected exit 3 (rolled back), got $$status" >&2; exit 1; }
	@echo
	@echo "HTML reports (open in a browser): $(abspath $(REPORTS))/rehearsal-v2-v3.html"
	@echo "                                  $(abspath $(REPORTS))/rehearsal-v2-v3-slow.html"

test: $(STAMP) $(CHECKOV_STAMP) ## Run the whole test suite (unit, training, template, integration; e2e needs a stack)
	$(OFFLINE) $(PY) -m pytest

# MODEL goes to serve only when given (make serve MODEL=v1): otherwise serve picks the newest
# trained model itself, rather than the v2 this Makefile defaults MODEL to for rollouts.
# ARGS passes any other flag of `python -m emulator serve --help` (e.g. ARGS=--access-log).
serve: $(STAMP) ## The API locally on 127.0.0.1: make serve [MODEL=v1] [PORT=3000] [ARGS=...]; Ctrl-C stops it
	$(PY) -m emulator serve --port $(or $(PORT),3000)$(if $(filter-out file,$(origin MODEL)), --model $(MODEL)) $(ARGS)

.PHONY: serve

##@ Models
train: $(STAMP) ## Retrain models/v1-v3 (release gate: the suite); never overwrites a committed one that does not reproduce (FORCE=1 does)
	$(PY) -m training.train --data $(HATE_DATA) --out models $(if $(FORCE),--force)

train-check: $(STAMP) ## Retrain in a temp folder and check it reproduces models/ (writes nothing)
	$(PY) -m training.train --check --data $(HATE_DATA) --out models

behaviour: $(STAMP) ## Behavioural suite (training/suite): pass rate per functionality for every model in models/
	$(PY) -m training.behaviour

calibration: $(STAMP) ## Reliability table, ECE and training prior of every model on the test split
	$(PY) -m training.calibration --data $(HATE_DATA)

candidates: $(STAMP) ## v3 candidates: 5-fold CV on train and the behavioural suite, never the test split (~2 min)
	$(PY) -m training.candidates --data $(HATE_DATA)

.PHONY: behaviour calibration candidates

.PHONY: train-check

##@ Benchmarks (results go to BENCHMARKS.md)
bench: bench-models bench-handler bench-shadow bench-judge bench-gateway bench-batch ## Run every benchmark

bench-models: $(STAMP) ## v1, v2 and the natural-js peer on the test split
	$(PY) -m bench.models --data $(HATE_DATA)

bench-handler: $(STAMP) ## Handler: warm latency, cold start vs naive sklearn and natural-js, package size
	$(PY) -m bench.handler --data $(HATE_DATA) $(if $(PYTHON312),--python312 $(PYTHON312))

bench-shadow: $(STAMP) ## Shadow scoring: warm and cold-start cost of scoring with the other models too
	$(PY) -m bench.shadow --data $(HATE_DATA)

bench-judge: $(STAMP) ## Evidence judge: rollbacks at 0.004-50 req/s, 400 simulated deployments per cell (~7 min)
	$(PY) -m bench.canary_power --workers 2

.PHONY: bench-shadow bench-judge

bench-gateway: $(STAMP) ## Local gateway at the usage plan's 1,000 req/s for 30 s from a separate process
	$(PY) -m bench.gateway_load --rate 1000 --duration 30

.PHONY: bench-gateway

bench-batch: $(STAMP) ## Texts/s through the local gateway: single requests vs batches of 1, 10, 100 (~90 s)
	$(PY) -m bench.batch_throughput --rounds 3 --seconds 5

.PHONY: bench-batch

##@ Quality
lint: $(STAMP) ## ruff (E, F, I, B, UP, C4)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP) ## Format the code with ruff
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

##@ AWS (build and validate run offline; every other target here needs AWS credentials)
SAM := $(VENV)/bin/sam
AWS_PREFLIGHT = $(PY) -m deploy.aws_preflight --env $(ENV)

build: $(STAMP) ## sam build: the three Lambda packages into .aws-sam/build (no Docker)
	$(OFFLINE) $(SAM) build --build-in-source

validate: $(STAMP) $(CHECKOV_STAMP) ## sam validate --lint (SAM, cfn-lint), then checkov with .checkov.yaml
	$(OFFLINE) $(SAM) validate --lint
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --config-file .checkov.yaml --compact --quiet

deploy: $(STAMP) ## Create or update the stack: make deploy ENV=dev (keeps the live model)
	@$(AWS_PREFLIGHT)
	$(MAKE) --no-print-directory build
	$(SAM) deploy --config-env $(ENV)

rollout: $(STAMP) ## Canary a model: make rollout MODEL=v2 ENV=prod (refuses a missing stack or the live model)
	@$(AWS_PREFLIGHT) --model $(MODEL)
	$(PY) -m deploy.rollout --env $(ENV) --model $(MODEL)

rollback: $(STAMP) ## Live alias back to the previous version now: make rollback ENV=prod [TO=N] [YES=1]
	@$(AWS_PREFLIGHT)
	$(PY) -m deploy.rollback --env $(ENV)$(if $(TO), --to $(TO))$(if $(YES), --yes)

prune-versions: $(STAMP) ## Delete versions older than the newest KEEP (dry run): make prune-versions ENV=prod [KEEP=5] [YES=1]
	@$(AWS_PREFLIGHT)
	$(PY) -m deploy.prune --env $(ENV) --keep $(or $(KEEP),5)$(if $(YES), --yes)

.PHONY: rollback prune-versions

decommission: $(STAMP) ## Delete the stack and its uploaded packages: make decommission ENV=dev
	@$(AWS_PREFLIGHT)
	$(SAM) delete --config-env $(ENV) --no-prompts

.PHONY: build validate deploy rollout decommission

report: $(STAMP) ## On-call canary report: make report ENV=prod [JSON=1] [HTML=page.html] (alarms, deployment, judge)
	@$(PY) -m canary.report --env $(ENV) $(if $(JSON),--json) $(if $(HTML),--html $(HTML))

.PHONY: report
include deploy/lambda.mk

##@ Consumers (an API key each on a plan of template.yaml; ENV=local is the local stack of make serve)
# ARGS passes deploy.consumers' own options (e.g. ARGS="--store PATH" for another local store).
CONSUMERS = $(PY) -m deploy.consumers --env $(ENV) $(ARGS)
CONSUMER_PREFLIGHT = $(if $(filter local,$(ENV)),@true,@$(AWS_PREFLIGHT))

consumer-add: $(STAMP) ## New consumer key, printed once: make consumer-add NAME=acme PLAN=standard|free ENV=local|dev|prod
	$(CONSUMER_PREFLIGHT)
	@$(CONSUMERS) add --name "$(NAME)" --plan "$(PLAN)"

consumer-list: $(STAMP) ## Every consumer key: plan, state, requests this month (retires keys past their grace)
	$(CONSUMER_PREFLIGHT)
	@$(CONSUMERS) list

consumer-revoke: $(STAMP) ## Disable a consumer's keys, off their plan, kept on record: make consumer-revoke NAME=acme
	$(CONSUMER_PREFLIGHT)
	@$(CONSUMERS) revoke --name "$(NAME)"

consumer-rotate: $(STAMP) ## New key on the same plan, the old one retires after GRACE hours (24): make consumer-rotate NAME=acme
	$(CONSUMER_PREFLIGHT)
	@$(CONSUMERS) rotate --name "$(NAME)"$(if $(GRACE), --grace-hours $(GRACE))

consumer-expire: $(STAMP) ## Disable the rotated keys whose grace has ended (cron it on AWS)
	$(CONSUMER_PREFLIGHT)
	@$(CONSUMERS) expire

.PHONY: consumer-add consumer-list consumer-revoke consumer-rotate consumer-expire

##@ Environment
venv: $(STAMP) ## Create .venv from pyproject.toml and constraints.txt

# First run only (and after pyproject.toml or constraints.txt change): pip prints little while it
# installs ~100 pinned packages, so say what is going on and how long it takes.
$(STAMP): pyproject.toml constraints.txt
	@echo "== setting up $(VENV): installing the pinned packages (first run only; about 1-4 minutes)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@start=$$(date +%s); \
	  $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[train,dev]' \
	  || { echo "== setting up $(VENV) failed: see pip's message above; 'rm -rf $(VENV)' and retry" >&2; exit 1; }; \
	  echo "== $(VENV) ready in $$(( $$(date +%s) - start )) s"
	@touch $@

# checkov pins a boto3 the project cannot share: it gets a virtualenv of its own, pinned whole.
$(CHECKOV_STAMP): tools/checkov-requirements.txt
	@echo "== setting up $(CHECKOV_VENV) for checkov (first run only; about 30 s)"
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	@$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r tools/checkov-requirements.txt \
	  || { echo "== setting up $(CHECKOV_VENV) failed: see pip's message above" >&2; exit 1; }
	@touch $@

constraints: $(STAMP) ## Regenerate constraints.txt from the current .venv
	@{ echo "# Pins for every package of the development environment (pip install -c constraints.txt)."; \
	   echo "# Top-level requirements live in pyproject.toml; regenerate with 'make constraints'."; \
	   $(PY) -m pip freeze --exclude-editable; } > constraints.txt

clean: ## Remove build outputs and caches (keeps .venv)
	rm -rf .aws-sam build .pytest_cache .ruff_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

.PHONY: help demo test train bench bench-models bench-handler lint format venv constraints clean
