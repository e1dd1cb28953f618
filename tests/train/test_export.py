"""ONNX export from several threads at once (``run-all --max-parallel`` trains model-days on
threads): every export succeeds, and no other thread's output is lost meanwhile."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from spindle.core import TrainingConfig
from spindle.train import InputSpec, Ranker, export_onnx


def test_exports_on_threads_all_verify_and_other_output_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = [
        InputSpec(cat_cardinalities=(5, 7), n_dense=3),
        InputSpec(n_dense=4, task="regression"),
    ]
    errors: list[BaseException] = []
    stdout = sys.stdout

    def export(n: int) -> None:
        try:
            spec = specs[n % 2]
            export_onnx(Ranker(spec, TrainingConfig()), spec, tmp_path / f"m{n}.onnx")
        except BaseException as error:  # reported below, with the thread's number
            errors.append(error)

    workers = [threading.Thread(target=export, args=(n,)) for n in range(3)]
    for worker in workers:
        worker.start()
    printed = 0
    while any(w.is_alive() for w in workers):  # this thread talks while the others export
        print(f"line {printed}")
        printed += 1
    for worker in workers:
        worker.join()
    assert errors == []
    assert all((tmp_path / f"m{n}.onnx").stat().st_size > 0 for n in range(3))
    assert sys.stdout is stdout
    lines = capsys.readouterr().out.splitlines()
    assert printed > 0 and lines == [f"line {i}" for i in range(printed)]
