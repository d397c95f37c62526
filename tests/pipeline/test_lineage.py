"""Tests of the pipeline's lineage: input listing and fingerprint, code version, manifest."""

import hashlib
import os
import re

import pytest

from pipeline import lineage

SECOND = 10**9
T0 = 1_700_000_000 * SECOND  # a whole second, so every file system stores it exactly


def write(path, text, mtime_ns=T0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


@pytest.fixture
def logs(tmp_path):
    raw = tmp_path / "raw"
    write(raw / "day2.jsonl", "bb\n", T0 + 5 * SECOND)
    write(raw / "day1.jsonl", "a\n")
    write(raw / "items.csv", "id\nx\n")
    return raw


# list_inputs


def test_list_inputs_lists_matches_sorted_with_size_and_mtime(logs):
    files = lineage.list_inputs([str(logs / "*.jsonl"), str(logs / "items.csv")])
    assert files == [
        {"path": str(logs / "day1.jsonl"), "bytes": 2, "mtime_ns": T0},
        {"path": str(logs / "day2.jsonl"), "bytes": 3, "mtime_ns": T0 + 5 * SECOND},
        {"path": str(logs / "items.csv"), "bytes": 5, "mtime_ns": T0},
    ]


def test_list_inputs_skips_empty_patterns(logs):
    pattern = str(logs / "*.jsonl")
    assert lineage.list_inputs(["", pattern, ""]) == lineage.list_inputs([pattern])
    assert lineage.list_inputs(["", ""]) == []


@pytest.mark.parametrize("name", ["*.parquet", "missing.jsonl"])
def test_list_inputs_fails_on_a_pattern_without_match(logs, name):
    pattern = str(logs / name)
    with pytest.raises(FileNotFoundError, match=re.escape(f"no input file matches '{pattern}'")):
        lineage.list_inputs([str(logs / "*.jsonl"), pattern])


# fingerprint


def fingerprint_of(logs):
    return lineage.fingerprint(lineage.list_inputs([str(logs / "*")]))


def test_fingerprint_is_stable_for_untouched_files(logs):
    first = fingerprint_of(logs)
    assert fingerprint_of(logs) == first
    assert len(first) == 64


def test_fingerprint_changes_with_a_files_size(logs):
    before = fingerprint_of(logs)
    write(logs / "day1.jsonl", "a\nb\n")  # same mtime, more bytes
    assert fingerprint_of(logs) != before


def test_fingerprint_changes_with_a_files_mtime(logs):
    before = fingerprint_of(logs)
    write(logs / "day1.jsonl", "z\n", T0 + SECOND)  # same size, rewritten a second later
    assert fingerprint_of(logs) != before


def test_fingerprint_changes_with_a_new_file(logs):
    before = fingerprint_of(logs)
    write(logs / "day3.jsonl", "c\n")
    assert fingerprint_of(logs) != before


def test_fingerprint_ignores_the_content_of_an_unchanged_listing(logs):
    before = fingerprint_of(logs)
    write(logs / "day1.jsonl", "z\n")  # same size and mtime: by design (TFX's span check)
    assert fingerprint_of(logs) == before


def test_fingerprint_changes_with_a_sub_second_mtime(logs):
    before = fingerprint_of(logs)
    write(logs / "day1.jsonl", "z\n", T0 + SECOND // 2)
    assert fingerprint_of(logs) != before


# code_version


def make_tree(root, files):
    for relative, text in files.items():
        write(root / relative, text)
    return str(root)


def test_code_version_hashes_relative_paths_and_contents(tmp_path):
    root = make_tree(tmp_path, {"pipeline/stages.py": "x = 1\n"})
    # Each file as <len(path)>:<path><len(content)>:<content>.
    expected = hashlib.sha256(b"18:pipeline/stages.py6:" + b"x = 1\n").hexdigest()
    assert lineage.code_version(root) == expected


CODE = {
    "recstack/__init__.py": "",
    "recstack/features.py": "A = 1\n",
    "beam_jobs/ingest.py": "B = 2\n",
    "trainer/train.py": "C = 3\n",
    "trainer/bert/tower.py": "D = 4\n",
    "serving/server.py": "E = 5\n",
    "pipeline/stages.py": "F = 6\n",
}


@pytest.fixture
def code(tmp_path):
    root = tmp_path / "src"
    return root, lineage.code_version(make_tree(root, CODE))


def test_code_version_is_stable(code):
    root, version = code
    assert lineage.code_version(str(root)) == version


@pytest.mark.parametrize(
    "change",
    [
        {"trainer/bert/tower.py": "D = 5\n"},  # edited, in a sub-package
        {"serving/server.py": "E = 5\n\n"},  # edited, one byte more
        {"pipeline/new.py": ""},  # added, even empty
    ],
)
def test_code_version_changes_with_python_source(code, change):
    root, version = code
    make_tree(root, change)
    assert lineage.code_version(str(root)) != version


def test_code_version_changes_when_a_module_is_renamed(code):
    root, version = code
    (root / "beam_jobs" / "ingest.py").rename(root / "beam_jobs" / "read.py")
    assert lineage.code_version(str(root)) != version


@pytest.mark.parametrize(
    "change",
    [
        {"trainer/README.md": "notes"},
        {"pipeline/__pycache__/stages.cpython-311.pyc": "bytecode"},
        {"serving/model.json": "{}"},
        {"tests/test_stages.py": "assert False"},  # outside the packages
        {"docs/conf.py": "x = 1"},
        {"setup.py": "setup()"},
    ],
)
def test_code_version_ignores_everything_but_package_python(code, change):
    root, version = code
    make_tree(root, change)
    assert lineage.code_version(str(root)) == version


def test_code_version_defaults_to_the_installed_source_tree():
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert lineage.code_version() == lineage.code_version(here)


# manifest


def test_manifest_round_trip(tmp_path):
    run_dir = str(tmp_path / "runs" / "20240101-000000-000001")  # created on write
    manifest = {"run_id": "r1", "stages": {"Trainer": {"ran": True, "artifacts": {}}},
                "data": {"files": [], "fingerprint": "abc"}, "pushed": None}  # fmt: skip
    path = lineage.write_manifest(run_dir, manifest)
    assert path == os.path.join(run_dir, lineage.MANIFEST_FILE)
    assert lineage.read_manifest(run_dir) == manifest
    assert os.listdir(run_dir) == [lineage.MANIFEST_FILE]  # no staging file left


def test_write_manifest_replaces_the_previous_one(tmp_path):
    lineage.write_manifest(str(tmp_path), {"status": "running", "extra": 1})
    lineage.write_manifest(str(tmp_path), {"status": "succeeded"})
    assert lineage.read_manifest(str(tmp_path)) == {"status": "succeeded"}
    assert os.listdir(tmp_path) == [lineage.MANIFEST_FILE]
