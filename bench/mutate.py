"""Mutation testing of the core with mutmut 3: `make mutate` (or `python bench/mutate.py events store`).

mutmut imports the code it mutates from its `mutants/` copy by module path, but this repository
maps folders to packages (`events/` is `tunelog.events`, pyproject's package-dir). So each module
gets a throwaway tree `.cache/mutate/<module>/` where the code sits under its real name,
`src/tunelog/<folder>` (with a `tunelog/__init__.py`, so Python's path finder picks the mutated copy
before the editable install's finder), the tests beside it, and a pyproject naming the module to
mutate and the fast tests that cover it. `PYTHONPATH` points worker and daemon subprocesses at
the same mutated copy.

`trainer` is the trainer's checkpoint/resume code (plugins/lora_trainer/checkpoint.py), run on
its own: `python bench/mutate.py trainer`. `jobs` is daemon/jobs/ alone (the job runner, its
workers and the warm worker host): the same mutant names as in `daemon`, a few minutes less
generating them.

Prints, per module, the mutants killed out of those with a verdict (the kill rate), and writes
the survivors to `.cache/mutate/<module>/survivors.txt` (`mutmut show NAME` in that tree's
folder shows a diff). Review them in tests/MUTANTS.md.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".cache" / "mutate"
FOLDERS = ("events", "store", "daemon", "plugins", "frontends")

# The fast tests that cover each module (no subprocess daemon, no training): mutmut runs, for each
# mutant, only those of them that executed the mutated function.
TESTS = {
    "events": ["tests/events", "tests/store"],
    "store": ["tests/store", "tests/events"],
    "daemon": ["tests/daemon/test_jobs.py", "tests/daemon/test_jobs_queue.py", "tests/daemon/test_jobs_cancel.py",
               "tests/daemon/test_plugins.py", "tests/daemon/test_manifest.py", "tests/daemon/test_lineage.py",
               "tests/daemon/test_api.py", "tests/daemon/test_verify.py", "tests/daemon/test_reproduce_api.py",
               "tests/daemon/test_paging.py", "tests/daemon/test_api_guard.py", "tests/daemon/test_plugin_checks.py",
               "tests/daemon/test_jobs_resume_checkpoint.py", "tests/daemon/test_commands.py", "tests/daemon/test_api_limits.py", "tests/daemon/test_snapshots.py", "tests/daemon/test_cache_key.py",
               "tests/daemon/test_lock.py", "tests/daemon/test_peer.py", "tests/daemon/test_services.py",
               "tests/daemon/test_main.py"],
    "trainer": ["tests/plugins/test_checkpoint.py"],
    "jobs": ["tests/daemon/test_attempt.py", "tests/daemon/test_runner.py", "tests/daemon/test_protocol.py",
             "tests/daemon/test_processes.py", "tests/daemon/test_launch.py", "tests/daemon/test_job_backend.py",
             "tests/daemon/test_zygote.py", "tests/daemon/test_warm.py"],
}
# A target that is part of a folder: what is mutated (below src/tunelog/; default: the folder itself).
SOURCES = {"trainer": "plugins/lora_trainer/checkpoint.py", "jobs": "daemon/jobs"}
# Code no test can sensibly exercise in-process, or that only wires parts together.
DO_NOT_MUTATE = {
    "daemon": ["src/tunelog/daemon/__main__.py", "src/tunelog/daemon/worker.py", "src/tunelog/daemon/version.py"],
}
KILLED = {"killed", "timeout", "segfault", "caught by type check"}
# mutmut's first pass (MUTANT_UNDER_TEST=stats) records which tests call which function; a
# subprocess started by a test (a job's worker, in its job folder) inherits the variable, and there
# mutmut cannot find its configuration and the process fails. Such calls are never credited anyway,
# so a new interpreter started during that pass runs the original code. A process forked from it
# may be handed the variable back (a warm worker takes its job's environment, the test process's):
# recording a hit is switched off for it too.
SUBPROCESS_STATS_OFF = """import os
if os.environ.get("MUTANT_UNDER_TEST") == "stats":
    os.environ["MUTANT_UNDER_TEST"] = ""
    import mutmut.mutation.trampoline
    mutmut.mutation.trampoline.record_trampoline_hit = lambda *args, **kwargs: None
"""


def build_tree(module: str, tests: list[str] | None = None) -> Path:
    """The throwaway tree for one module, rebuilt from the working copy (mutmut's results reset)."""
    tree = WORK / module
    shutil.rmtree(tree, ignore_errors=True)
    pkg = tree / "src" / "tunelog"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    ignore = shutil.ignore_patterns("__pycache__", "node_modules", "*.pyc")
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, pkg / folder, ignore=ignore)
    copy_tests(tree)
    # Python caches "no such folder" for a sys.path entry: the mutated copy's folder must exist
    # before mutmut starts, or its imports fall through to the editable install's unmutated code.
    (tree / "mutants" / "src").mkdir(parents=True)
    (tree / "mutants" / "src" / "sitecustomize.py").write_text(SUBPROCESS_STATS_OFF)
    write_config(tree, module, tests)
    return tree


def write_config(tree: Path, module: str, tests: list[str] | None = None) -> None:
    """The tree's pyproject: pytest's settings, and what mutmut mutates and which tests it runs."""
    project = (ROOT / "pyproject.toml").read_text()
    pytest_conf = project[project.index("[tool.pytest.ini_options]"):project.index("[tool.ruff]")]
    also = ["src/tunelog/__init__.py", *(f"src/tunelog/{f}" for f in FOLDERS if f != module)]
    conf = {
        "source_paths": [f"src/tunelog/{SOURCES.get(module, module)}"],
        "also_copy": also,
        "pytest_add_cli_args": ["-p", "no:randomly", "-p", "no:cacheprovider", "-q", "-x"],
        "timeout_multiplier": 3.0,  # a mutant that loops forever is given 3x the tests' clean time
        "pytest_add_cli_args_test_selection": tests or TESTS[module],
        "do_not_mutate": DO_NOT_MUTATE.get(module, []),
    }
    lines = ["[tool.mutmut]"] + [f"{k} = {json.dumps(v)}" for k, v in conf.items()]
    (tree / "pyproject.toml").write_text(pytest_conf + "\n" + "\n".join(lines) + "\n")


def copy_tests(tree: Path) -> None:
    """The working copy's tests into the tree and its mutants/ copy (property tests run a tenth of
    their examples: each mutant runs every test that reaches the mutated function)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for where in (tree / "tests", tree / "mutants" / "tests"):
        shutil.rmtree(where, ignore_errors=True)
        shutil.copytree(ROOT / "tests", where, ignore=ignore)
        for test in where.rglob("test_*.py"):
            text = test.read_text()
            fewer = re.sub(r"max_examples=(\d+)", lambda m: f"max_examples={max(10, int(m[1]) // 10)}", text)
            if fewer != text:
                test.write_text(fewer)


def statuses(tree: Path, env: dict[str, str]) -> dict[str, str]:
    mutmut = Path(sys.executable).with_name("mutmut")
    out = subprocess.run([str(mutmut), "results", "--all", "true"], cwd=tree, env=env, check=True,
                         capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name:
            found[name] = status
    return found


def run(module: str, *, children: int, names: list[str], again: bool, tests: list[str] | None = None) -> dict[str, int]:
    tree = WORK / module
    env = {**os.environ, "PYTHONPATH": str(tree / "mutants" / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    if again:  # the same mutants against today's tests: only those not killed last time run
        copy_tests(tree)
        (tree / "mutants" / "src" / "sitecustomize.py").write_text(SUBPROCESS_STATS_OFF)
        write_config(tree, module, tests)
        names = names or [n for n, status in statuses(tree, env).items() if status in ("survived", "no tests")]
    else:
        build_tree(module, tests)
    mutmut = Path(sys.executable).with_name("mutmut")
    subprocess.run([str(mutmut), "run", "--max-children", str(children), *names], cwd=tree, env=env, check=True)
    counts: dict[str, int] = {}
    survivors = []
    for name, status in statuses(tree, env).items():
        counts[status] = counts.get(status, 0) + 1
        if status != "killed":
            survivors.append(f"{status}\t{name}")
    (tree / "survivors.txt").write_text("\n".join(sorted(survivors)) + "\n")
    return counts


def fresh(module: str, *, names: list[str], tests: list[str]) -> None:
    """Re-test the last run's survivors, each in a new process running `tests`: code that runs once
    per process (route tables built at import, first-use caches) ran before mutmut's fork switched
    the mutant on. With `names`, the matching mutants not checked yet are tested too (a run stopped
    early). Writes `fresh.txt` beside survivors.txt."""
    tree = WORK / module
    env = {**os.environ, "PYTHONPATH": str(tree / "mutants" / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    copy_tests(tree)
    wanted = ("survived", "no tests", "not checked") if names else ("survived", "no tests")
    survivors = [n for n, status in statuses(tree, env).items() if status in wanted
                 and (not names or any(fnmatch.fnmatch(n, g) for g in names))]
    lines = []
    for name in survivors:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:randomly", "-p", "no:cacheprovider",
                               *tests], cwd=tree / "mutants", env={**env, "MUTANT_UNDER_TEST": name},
                              capture_output=True, text=True)
        lines.append(f"{'killed' if proc.returncode != 0 else 'survived'}\t{name}")
        print(lines[-1], flush=True)
    (tree / "fresh.txt").write_text("\n".join(lines) + "\n")
    print(f"{module}: {sum(line.startswith('killed') for line in lines)}/{len(lines)} survivors killed in a fresh process")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=["events", "store", "daemon"], choices=sorted(TESTS))
    parser.add_argument("--children", type=int, default=1, help="mutants tested at once (default 1)")
    parser.add_argument("--only", action="append", default=[], metavar="GLOB",
                        help="mutant names to test, e.g. 'tunelog.store.artifacts*' (default: all)")
    parser.add_argument("--again", action="store_true",
                        help="keep the last run's mutants and verdicts; test the survivors against today's tests")
    parser.add_argument("--fresh", nargs="+", metavar="TEST",
                        help="re-test the last run's survivors (or those --only names) each in a new process "
                             "with these tests, e.g. tests/daemon/test_commands.py")
    parser.add_argument("--tests", nargs="+", metavar="TEST",
                        help="run these tests instead of the module's fast tests (mutmut's first pass runs every "
                             "one of them: a few files covering the mutated code make it minutes shorter)")
    args = parser.parse_args()
    if args.fresh:
        for module in args.modules:
            fresh(module, names=args.only, tests=args.fresh)
        return 0
    for module in args.modules:
        counts = run(module, children=args.children, names=args.only, again=args.again, tests=args.tests)
        killed = sum(n for status, n in counts.items() if status in KILLED)
        judged = sum(n for status, n in counts.items() if status not in {"skipped", "not checked"})
        rate = 100.0 * killed / judged if judged else 0.0
        print(f"{module}: {killed}/{judged} mutants killed ({rate:.1f} %); "
              + ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))
              + f"; survivors in {(WORK / module / 'survivors.txt').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
