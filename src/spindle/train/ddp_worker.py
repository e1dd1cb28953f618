"""One torchrun rank: ``python -m spindle.train.ddp_worker JOB_DIR``.

The entry point ``spindle.train._torchrun`` hands to ``torch.distributed.run`` (a public
module name, not ``_name.py``, because it is typed on command lines of other machines). The
rank reads its job, puts the job's import paths on ``sys.path`` (a fresh process does not have
the launching process's, e.g. the workspace directory a custom module is imported from), joins
the gloo group from the environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``) and runs the DDP recipe; a failure is also written to
``JOB_DIR/error-rank<R>.txt`` so the launching process can repeat the message.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch.distributed as dist

from spindle.train._ddp import run_rank
from spindle.train._torchrun import add_import_paths, read_job


def main(argv: list[str] | None = None) -> int:
    """Run one rank of the job in ``argv[0]`` (default: ``sys.argv[1]``)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m spindle.train.ddp_worker JOB_DIR", file=sys.stderr)
        return 2
    job_dir = Path(args[0])
    rank = os.environ.get("RANK", "0")
    try:
        job = read_job(job_dir)
        add_import_paths(job.import_paths)  # before anything builds the model
        dist.init_process_group("gloo")
        run_rank(job)
    except Exception as error:
        (job_dir / f"error-rank{rank}.txt").write_text(f"{type(error).__name__}: {error}\n")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
