"""The chunked run of tests/test_nothing_lost.py's full-disk test (not a test module).

    python tests/full_disk_worker.py OUT

runs ``purejaxpg train ppo ... --chunks 4 --out OUT`` on a small tmpfs and fills that disk
(a file ``filler`` beside OUT, written until ENOSPC) right after the first checkpoint is
saved, so the second one cannot be written. Exits with the command's exit code; its
stderr is the command's.
"""
import errno
import os
import sys

from purejaxpg.cli import main
from purejaxpg.engine.checkpoint import CheckpointStore

ARGS = ["ppo", "--env", "CartPole-v1", "--num-seeds", "2", "--total-timesteps", "512", "--num-envs", "4",
        "--num-steps", "16", "--hidden", "16", "--update-epochs", "1", "--num-minibatches", "2",
        "--num-eval-episodes", "2", "--quiet", "--chunks", "4"]


def fill(directory: str) -> None:
    """Write ``filler`` until the disk has no byte left. Unbuffered: a buffered file would
    keep what the full disk refused and raise ENOSPC again when closed."""
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 16, 4096, 512, 1):  # then the last partial blocks
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)


if __name__ == "__main__":
    out = sys.argv[1]
    save = CheckpointStore.save

    def save_then_fill(self, step, *args):
        save(self, step, *args)
        if step == 1:
            fill(os.path.dirname(os.path.abspath(out)))

    CheckpointStore.save = save_then_fill
    sys.exit(main(["train", *ARGS, "--out", out]))
