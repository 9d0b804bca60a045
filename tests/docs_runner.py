"""Runs the commands of one documentation page (``python tests/docs_runner.py PAGE DIR
[rest|physics]``), for ``tests/test_docs.py``, which says what is run and how; exits 0 when
every one ran.

The budget of every run is cut to ``UPDATES`` updates after its warm-up, an off-policy
warm-up (random actions before ``learning_starts``) to one update (a wrapper around
``Spec.resolve``, so the runner, resume and eval see the same budget), and the lab to a few
batches without its natural-gradient and off-policy sections.
"""
import os
import re
import runpy
import shlex
import subprocess
import sys
import time

import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UPDATES = 4  # updates after warm-up that each documented run keeps
# XLA_FLAGS with LLVM's optimisations off: about half the compile time; floats round differently,
# so only for processes whose results are compared with each other (or not at all)
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
PHYSICS = re.compile(r"\b(playground|brax)/|physics_")  # commands that need the mujoco extra
SKIPPED = "docs_runner: not run: "  # the line that reports a command not run, for tests/test_docs.py


def blocks(page: str) -> list:
    """[("bash", [argv, ...]) or ("python", source)] of ``page``, in order."""
    out = []
    for lang, body in FENCE.findall(open(os.path.join(ROOT, page)).read()):
        if lang == "python":
            out.append(("python", body))
        elif lang in ("bash", "sh"):
            commands = []
            for line in body.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                while words:
                    cut = words.index("&&") if "&&" in words else len(words)
                    commands.append(words[:cut])
                    words = words[cut + 1:]
            out.append(("bash", commands))
    return out


def small_budget() -> None:
    """Cut every run to ``UPDATES`` updates after a warm-up of at most one update, and the lab
    to 4 batches."""
    import purejaxpg.lab
    from purejaxpg.engine.spec import Spec

    resolve, run_lab = Spec.resolve, purejaxpg.lab.run_lab

    def small(self, overrides=None, base=None):
        config, hparams = resolve(self, overrides, base)
        cut = {}
        warmup = getattr(config, "num_warmup_updates", 0)
        if warmup > 1 and hasattr(config, "learning_starts"):  # off-policy: one update of random actions
            cut["learning_starts"], warmup = config.batch_size, 1
        if getattr(config, "num_updates", 0) > warmup + UPDATES:
            cut["total_timesteps"] = config.batch_size * (warmup + UPDATES)
        return resolve(self, {**(overrides or {}), **cut}, base) if cut else (config, hparams)

    def small_lab(mdp="random", num_states=None, num_actions=None, batch_sizes=(4, 16, 64), k=200, *args, **kwargs):
        return run_lab(mdp, num_states, num_actions, batch_sizes, min(int(k), 4), *args,
                       **{**kwargs, "natural": False, "off_policy": False})

    Spec.resolve = small
    purejaxpg.lab.run_lab = small_lab


def run_command(words: list) -> None:
    """Run one command (see tests/test_docs.py); raises AssertionError when it fails."""
    from purejaxpg import cli

    env = {}
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        if name == "PYTHONPATH":
            sys.path[:0] = [os.path.join(ROOT, p) for p in value.split(os.pathsep)]
        else:
            env[name] = value
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        _run(words, cli)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def _run(words: list, cli) -> None:
    if words[0] == "purejaxpg":
        code = cli.main(words[1:])
        assert code == 0, f"exit code {code}"
    elif words[0] in ("python", "python3") and words[1:3] == ["-m", "venv"] or words[0] in (".", "source", "pytest"):
        pass  # README's setup lines: ../shared/tools/fresh-clone-check runs them on a fresh clone
    elif words[0] == "pip":
        extras = {e for w in words for group in re.findall(r"\[([\w,]+)\]", w) for e in group.split(",")}
        declared = set(tomllib.load(open(os.path.join(ROOT, "pyproject.toml"), "rb"))["project"]
                       ["optional-dependencies"])
        assert extras <= declared, f"extras not in pyproject.toml: {extras - declared}"
    elif words[0] == "python" and words[1].startswith("examples/"):
        argv = sys.argv
        sys.argv = words[1:]
        try:
            runpy.run_path(os.path.join(ROOT, words[1]), run_name="__main__")
        finally:
            sys.argv = argv
    elif words[0] == "python" and (words[1].startswith(("benchmarks/", "scripts/")) or words[1:3] == ["-m",
                                                                                                      "benchmarks"]):
        target = words[1:3] if words[1] == "-m" else [os.path.join(ROOT, words[1])]
        rest = words[3:] if words[1] == "-m" else words[2:]
        _subprocess([sys.executable, *target, *rest, "--smoke"], {})
    elif words[0] == "bash" and words[1] == "benchmarks/gpu.sh":
        _subprocess(["bash", os.path.join(ROOT, words[1]), *words[2:]], {"SMOKE": "1", "OUT": os.getcwd()})
    else:
        raise AssertionError("tests/docs_runner.py does not know how to run it: teach it, or write the command "
                             "another way")


def _subprocess(argv: list, env: dict) -> None:
    """A benchmark or script at its smallest budget (``--smoke``) in a child process, in this
    page's directory, with this checkout importable and this Python first on PATH."""
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    bin_dir = os.path.dirname(sys.executable)
    env = {**os.environ, "PYTHONPATH": path, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), **env}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"exit code {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"


def physics_installed() -> bool:
    from purejaxpg.envs.suites import SUITES

    return all(s.installed() for s in SUITES.values())


def main(page: str, directory: str, which: str = "rest") -> int:
    """Run the page's commands: ``which`` "rest", all but those that need the mujoco extra
    (``PHYSICS``); "physics", only those, each reported as not run when the extra is missing."""
    from purejaxpg.engine import host

    host.configure()
    small_budget()
    os.chdir(directory)
    times = os.environ.get("PUREJAXPG_DOCS_TIMES")
    for kind, content in blocks(page):
        for words in ([content] if kind == "python" else content):
            t = time.perf_counter()
            what = "python block" if kind == "python" else shlex.join(words)
            if (kind == "bash" and bool(PHYSICS.search(what))) != (which == "physics"):
                continue
            if which == "physics" and not physics_installed():
                print(f"{SKIPPED}{what}  (needs the mujoco extra: pip install -e '.[mujoco]')", flush=True)
                continue
            try:
                if kind == "python":
                    exec(compile(words, f"{page} (python block)", "exec"), {"__name__": "__docs__"})
                else:
                    run_command(list(words))
            except BaseException as e:
                print(f"docs_runner: {page}: `{what}` failed: {type(e).__name__}: {e}", file=sys.stderr)
                raise
            if times:
                with open(times, "a") as f:
                    f.write(f"{time.perf_counter() - t:6.1f} s  {page}: {what[:150]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
