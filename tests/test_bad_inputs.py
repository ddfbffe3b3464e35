"""Bad input, wherever a user can give it, gets one clear error naming the file or config
key and what was expected, before any expensive work.

Config values, model folders and the problem file are checked when Snakemake parses the
workflow (a dry run shows it: no job starts); completion, pool and checkpoint files by
the CLIs before they sample or grade. Each case's error, as produced here, is the table
in docs/bad_inputs.md; ``PGRPO_WRITE_DOCS=1 pytest tests/test_bad_inputs.py`` rewrites it,
and the last test fails while the table is stale.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from projected_grpo.environment import grade
from projected_grpo.policy import evaluate
from projected_grpo.training import train

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "bad_inputs.md"
# (input tried, error) per case id, in the order the cases ran: the docs table.
SEEN: dict[str, tuple[str, str]] = {}


def _model_without_tokenizer(source: Path, dest: Path) -> Path:
    dest.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(source / name, dest / name)
    return dest


def _no_model(tmp: Path) -> Path:
    (tmp / "notes").mkdir()
    (tmp / "notes" / "README.md").write_text("not a model\n")
    return tmp / "notes"


def _problem_file(tmp: Path) -> Path:
    row = {"problem_id": "p1", "method": "f", "signature": "def f(self):", "description": "d",
           "canonical_solution": "class Solution:\n    def f(self):\n        return 1\n"}  # fmt: skip
    (tmp / "problems.jsonl").write_text(json.dumps(row) + "\n")
    return tmp / "problems.jsonl"


def _corrupt(path: Path) -> Path:
    path.write_bytes(b"PAR1 this is not really parquet")
    return path


# id -> (what the user gave, change to config.yaml: f(config, tmp, organism_folder), expected in the error)
CONFIG_CASES = {
    "config_value_type": (
        "config `sandbox.workers: zero`",
        lambda c, t, m: c["sandbox"].update(workers="zero"),
        "'zero' is not of type 'integer'",
    ),
    "config_unknown_key": (
        "config key `evaluaton:` (typo)",
        lambda c, t, m: c.update(evaluaton={"n_samples": 4}),
        "'evaluaton' was unexpected",
    ),
    "config_dtype": (
        "config `compute.dtype: bf16`",
        lambda c, t, m: c["compute"].update(dtype="bf16"),
        "'bf16' is not one of ['float32', 'bfloat16', 'float16']",
    ),
    "fold_unknown_mode": (
        "config `method.folds: [all, without_typo]` (a fold naming an unknown mode)",
        lambda c, t, m: c["method"].update(folds=["all", "without_typo"]),
        "'without_typo' does not match",
    ),
    "arm_unknown_basis": (
        "config arm `erase: {basis: realV}` (a V that does not exist)",
        lambda c, t, m: c["arms"]["erase"].update(basis="realV"),
        "'realV' is not one of ['real', 'random', 'shuffled', 'nonhack', 'correct', 'dominant', 'oracle', 'trusted', 'random_trusted']",
    ),
    "arm_missing_basis": (
        "config arm `erase` projecting with no `basis:`",
        lambda c, t, m: c["arms"]["erase"].pop("basis"),
        "config arms.erase: projection.intervention 'erase' needs a basis",
    ),
    "train_mix": (
        "config `train.mix: 0.95` (no student sample left in a group of 8)",
        lambda c, t, m: c["train"].update(mix=0.95),
        "config train: expected mix in [0, 1) leaving at least one student sample",
    ),
    "pool_too_small": (
        "config `teacher.n_per_problem: 2` with groups drawing 4 pool rows",
        lambda c, t, m: c["teacher"].update(n_per_problem=2),
        "draws 4 teacher rows per prompt (mix 0.5 x group_size 8) but teacher.n_per_problem is 2",
    ),
    "prompts_per_step": (
        "config `train.prompts_per_step: 500` (more than the train problems)",
        lambda c, t, m: c["train"].update(prompts_per_step=500),
        "prompts_per_step 500 exceeds the 70 train problems of builtin",
    ),
    "organism_override": (
        "config `teacher.organism: {corpus: {hak_prior: 0.9}}` (typo in an override)",
        lambda c, t, m: c["teacher"].update(organism={"corpus": {"hak_prior": 0.9}}),
        "config teacher.organism:",
    ),
    "student_not_a_model": (
        "config `student.model:` a folder that is not a model",
        lambda c, t, m: c["student"].update(model=str(_no_model(t))),
        "not a model folder (no config.json",
    ),
    "teacher_missing": (
        "config `teacher.model:` a path that does not exist",
        lambda c, t, m: c["teacher"].update(model=str(t / "no_such_model")),
        "config teacher.model:",
    ),
    "teacher_no_tokenizer": (
        "config `teacher.model:` a model folder without its tokenizer",
        lambda c, t, m: c["teacher"].update(model=str(_model_without_tokenizer(m, t / "untokenized"))),
        "no tokenizer (expected one of tokenizer.json, tokenizer.model, vocab.json",
    ),
    "problems_missing": (
        "config `problems: missing.jsonl`",
        lambda c, t, m: c.update(problems=str(t / "missing.jsonl")),
        "missing.jsonl: no such file",
    ),
    "problems_bad_row": (
        "config `problems:` a file whose row 0 has no `tests`",
        lambda c, t, m: c.update(problems=str(_problem_file(t))),
        "row 0: field 'tests': missing",
    ),
    "seeds_repeated": (
        "config `seeds: [41, 41]`",
        lambda c, t, m: c.update(seeds=[41, 41]),
        "has non-unique elements",
    ),
}


def _snakemake_error(output: str) -> str:
    """The error Snakemake prints for a config it refuses: the schema violation and where,
    or the message of the exception a start-up check raised."""
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("ValidationError:"):
            where = next((x for x in lines[i:] if x.startswith("On instance")), "")
            return f"{line} ({where.rstrip(':')})" if where else line
    for i, line in enumerate(lines):
        if re.match(r"\w+Error in file .*, line \d+:$", line):
            return lines[i + 1]
    return output[-500:]


def _normalised(text: str, tmp: Path) -> str:
    return text.replace(str(tmp), "<tmp>").replace(str(REPO), "<repo>")


@pytest.mark.dag
@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_config_input_fails_at_start_up_naming_the_key(case, tmp_path, micro_organism):
    given, change, expected = CONFIG_CASES[case]
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    change(config, tmp_path, Path(micro_organism))
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), "--cores", "1", "--dry-run"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "rule build_problems:" not in output
    error = _snakemake_error(output)
    assert expected in error, output[-2000:]
    SEEN[case] = (given, _normalised(error, tmp_path))


def _run_yaml(tmp: Path, **fields) -> str:
    path = tmp / "run.yaml"
    path.write_text(yaml.safe_dump({"train": {"mix": 0.0, "steps": 1}, **fields}))
    return str(path)


def _checkpoint_dir(tmp: Path) -> str:
    (tmp / "out").mkdir()
    (tmp / "out" / "checkpoint.pt").write_bytes(b"half a checkpoint")
    return str(tmp / "out")


# id -> (what the user gave, f(tmp, organism) -> (CLI main, argv), expected in the error)
FILE_CASES = {
    "completions_missing_field": (
        "`grade --completions` a row without `completion`",
        lambda t, m: (
            grade.main,
            [
                "--completions",
                _jsonl(t, [{"problem_id": "count_greater-0"}]),
                "--out",
                str(t / "g.parquet"),
            ],
        ),  # fmt: skip
        "row 0: field 'completion': expected a string, found missing",
    ),
    "completions_unknown_mode": (
        "`grade --completions` a row with `mode: cheating`",
        lambda t, m: (
            grade.main,
            [
                "--completions",
                _jsonl(t, [{"problem_id": "count_greater-0", "completion": "x", "mode": "cheating"}]),
                "--out",
                str(t / "g.parquet"),
            ],
        ),  # fmt: skip
        "field 'mode': unknown mode 'cheating'",
    ),
    "completions_corrupt_parquet": (
        "`grade --completions` a corrupt parquet file",
        lambda t, m: (
            grade.main,
            ["--completions", str(_corrupt(t / "c.parquet")), "--out", str(t / "g.parquet")],
        ),
        "c.parquet: not a readable parquet file",
    ),
    "problems_corrupt_parquet": (
        "`grade --problems` a corrupt parquet file",
        lambda t, m: (grade.main, ["--problems", str(_corrupt(t / "p.parquet")), "--self-check"]),
        "p.parquet: not a readable parquet file",
    ),
    "evaluate_not_a_model": (
        "`evaluate --model` a folder that is not a model",
        lambda t, m: (evaluate.main, ["--model", str(_no_model(t)), "--out", str(t / "e")]),
        "--model: <tmp>/notes: not a model folder (no config.json",
    ),
    "train_not_a_model": (
        "`train` run.yaml `model:` a folder that is not a model",
        lambda t, m: (train.main, ["--config", _run_yaml(t, model=str(_no_model(t))), "--out", str(t / "o")]),
        "model: <tmp>/notes: not a model folder",
    ),
    "train_no_tokenizer": (
        "`train` run.yaml `model:` a model folder without its tokenizer",
        lambda t, m: (
            train.main,
            [
                "--config",
                _run_yaml(t, model=str(_model_without_tokenizer(m, t / "bare"))),
                "--out",
                str(t / "o"),
            ],
        ),  # fmt: skip
        "no tokenizer (expected one of tokenizer.json",
    ),
    "train_corrupt_pool": (
        "`train` run.yaml `pool:` a corrupt parquet file",
        lambda t, m: (
            train.main,
            [
                "--config",
                _run_yaml(t, model=str(m), pool=str(_corrupt(t / "pool.parquet"))),
                "--out",
                str(t / "o"),
            ],
        ),  # fmt: skip
        "pool.parquet: not a readable parquet file (expected a teacher pool (pool:)",
    ),
    "train_missing_basis": (
        "`train` run.yaml `basis:` a V file that does not exist",
        lambda t, m: (
            train.main,
            [
                "--config",
                _run_yaml(t, model=str(m), basis=str(t / "V_real.safetensors")),
                "--out",
                str(t / "o"),
            ],
        ),  # fmt: skip
        "V_real.safetensors: not a readable basis file",
    ),
    "train_unknown_mode": (
        "`train` run.yaml `train.known_modes: [typo]`",
        lambda t, m: (
            train.main,
            ["--config", _run_yaml(t, model=str(m), train={"known_modes": ["typo"]}), "--out", str(t / "o")],
        ),  # fmt: skip
        "known_modes a non-empty subset of",
    ),
    "train_erase_without_basis": (
        "`train` run.yaml projecting (`erase`) with no `basis:`",
        lambda t, m: (
            train.main,
            [
                "--config",
                _run_yaml(t, model=str(m), train={"mix": 0, "projection": {"intervention": "erase"}}),
                "--out",
                str(t / "o"),
            ],
        ),  # fmt: skip
        "projection.intervention='erase' needs a basis; none was given",
    ),
    "train_corrupt_checkpoint": (
        "`train --out` a folder holding a corrupt `checkpoint.pt`",
        lambda t, m: (train.main, ["--config", _run_yaml(t, model=str(m)), "--out", _checkpoint_dir(t)]),
        "checkpoint.pt: not a readable checkpoint",
    ),
}


def _jsonl(tmp: Path, rows: list[dict]) -> str:
    (tmp / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(tmp / "c.jsonl")


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_bad_file_input_fails_with_one_message_naming_the_file(case, tmp_path, micro_organism, capsys):
    given, invocation, expected = FILE_CASES[case]
    main, argv = invocation(tmp_path, Path(micro_organism))
    assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    error = _normalised(errors[0], tmp_path)
    assert expected in error
    assert not (tmp_path / "o").exists() and not (tmp_path / "g.parquet").exists()  # nothing written
    SEEN[case] = (given, error)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


def test_docs_table_of_bad_inputs_is_current():
    cases = list(CONFIG_CASES) + list(FILE_CASES)
    if set(SEEN) != set(cases):
        pytest.skip("runs only after every bad-input case above")
    rows = [f"| {SEEN[c][0]} | `{_cell(SEEN[c][1])}` |" for c in cases]
    table = "\n".join(["| input tried | error |", "|---|---|", *rows]) + "\n"
    header = DOC.read_text().split("| input tried |")[0] if DOC.is_file() else ""
    text = header + table
    if os.environ.get("PGRPO_WRITE_DOCS"):
        DOC.write_text(text)
    assert DOC.is_file() and DOC.read_text() == text, (
        "docs/bad_inputs.md is stale: PGRPO_WRITE_DOCS=1 pytest tests/test_bad_inputs.py"
    )
