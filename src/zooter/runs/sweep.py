"""``zooter sweep FILE``: run a W&B sweep file offline, resumably, and aggregate it.

The same YAML drives ``wandb sweep`` + ``wandb agent`` (with an account) and this runner (without).
Each point runs ``zooter fit`` with the file's command arguments plus ``--name=value`` per parameter,
then ``zooter test`` on its best checkpoint, each in its own process, in ``<out>/<point id>/``.
A point is done when its ``test/test_metrics.json`` exists: a rerun skips done points, resumes a
point killed mid-fit from its ``fit/checkpoints/last.ckpt`` (when its arguments are unchanged), and
starts other broken points over. ``grid`` runs the Cartesian product of ``values``; ``random`` draws ``run_cap`` points
(``values`` or ``distribution: uniform | int_uniform | log_uniform_values`` with ``min``/``max``);
``bayes`` needs the W&B server and is refused. At the end: ``aggregate.md``, ``aggregate.json`` and
``aggregate.png``: each metric's mean ± std over seeds per swept value, with BMA and oracle lines.
``--dry_run`` lists the points and their commands, and estimates the time the points still to run take:
from the median time of the finished points in ``<out>`` (each writes ``timing.json``), or, before any
has run, from the recorded β sweep (:data:`RECORDED_SECONDS_PER_POINT`).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from zooter.files import resume_args, write_text_atomic

SEED_KEY = "seed_everything"
METRICS = ("test/routed_score", "test/gap_recovered", "test/kl", "test/top1_acc")
MACROS = ("${env}", "${interpreter}", "${program}", "${args}", "${args_no_hyphens}")
# a point's fit + test in experiments/results/beta.md: 21 points in 9 min 9 s on 2 CPU cores
RECORDED_SECONDS_PER_POINT = 26.0
RECORDED_BASIS = (
    "a rough figure: the recorded beta sweep, experiments/results/beta.md, quickstart points with "
    "--data.synth.num_queries=2000 on 2 CPU cores; the quickstart's own 4,000 queries take about twice that, "
    "larger encoders and more epochs longer"
)


@dataclass
class Sweep:
    """A parsed sweep file."""

    name: str
    method: str
    metric: str
    base_args: list[str]
    parameters: dict[str, dict[str, Any]]
    run_cap: int | None = None
    goal: str = "maximize"  # of ``metric``: the setting chosen on validation is its best mean over seeds

    @classmethod
    def load(cls, path: str | Path) -> Sweep:
        path = Path(path)
        spec = yaml.safe_load(path.read_text())
        for key in ("program", "method", "parameters"):
            if key not in spec:
                raise ValueError(f"{path}: a sweep file needs {key!r}")
        command = [str(part) for part in spec.get("command", [])]
        if "fit" not in command:
            raise ValueError(
                f"{path}: the command must run `fit` (e.g. [${{env}}, ${{interpreter}}, ${{program}}, fit, ...])"
            )
        base = [part for part in command[command.index("fit") + 1 :] if part not in MACROS]
        for name, parameter in spec["parameters"].items():
            if not isinstance(parameter, dict) or not {"value", "values", "distribution"} & set(parameter):
                raise ValueError(f"{path}: parameter {name!r} needs `values`, `value` or `distribution`")
        return cls(
            name=spec.get("name", path.stem),
            method=spec["method"],
            metric=(spec.get("metric") or {}).get("name", "val/routed_score"),
            goal=(spec.get("metric") or {}).get("goal", "maximize"),
            base_args=base,
            parameters=spec["parameters"],
            run_cap=spec.get("run_cap"),
        )

    def points(self, seed: int = 0, count: int | None = None) -> list[dict[str, Any]]:
        """The parameter settings to run, in a stable order."""
        if self.method == "grid":
            names = list(self.parameters)
            choices = [_grid_values(name, self.parameters[name]) for name in names]
            return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices)]
        if self.method == "random":
            count = count or self.run_cap
            if not count:
                raise ValueError(f"sweep {self.name!r}: method 'random' needs run_cap in the file or --count")
            rng = np.random.default_rng(seed)
            return [{name: _draw(name, p, rng) for name, p in self.parameters.items()} for _ in range(count)]
        if self.method == "bayes":
            raise ValueError(
                f"sweep {self.name!r}: method 'bayes' needs the W&B server's optimizer; run it with `wandb sweep` "
                "and `wandb agent`, or use grid or random offline"
            )
        raise ValueError(f"sweep {self.name!r}: unknown method {self.method!r} (grid, random or bayes)")


def _grid_values(name: str, parameter: dict[str, Any]) -> list[Any]:
    if "values" in parameter:
        return list(parameter["values"])
    if "value" in parameter:
        return [parameter["value"]]
    raise ValueError(f"grid parameter {name!r} needs `values` or `value`, not a distribution")


def _draw(name: str, parameter: dict[str, Any], rng: np.random.Generator) -> Any:
    if "values" in parameter:
        return parameter["values"][rng.integers(len(parameter["values"]))]
    if "value" in parameter:
        return parameter["value"]
    kind, low, high = parameter["distribution"], parameter.get("min"), parameter.get("max")
    if kind == "uniform":
        return float(rng.uniform(low, high))
    if kind == "int_uniform":
        return int(rng.integers(low, high + 1))
    if kind == "log_uniform_values":
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))
    raise ValueError(f"parameter {name!r}: distribution {kind!r} is not supported offline")


def point_args(point: dict[str, Any]) -> list[str]:
    """``--name=value`` per parameter, as the W&B agent's ``${args}`` renders them."""
    return [f"--{name}={value}" for name, value in point.items()]


def point_id(index: int, point: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(point, sort_keys=True).encode()).hexdigest()[:8]
    return f"p{index:03d}-{digest}"


@dataclass
class SweepRunner:
    """Settings of ``zooter sweep``.

    Args:
        workers: points run in parallel (each point is one process at a time).
        dry_run: list the points and their commands and estimate their time; run nothing.
        out: the sweep's directory (default: ``sweeps/<name>``).
        count: points to draw for ``random`` (default: the file's ``run_cap``).
        seed: seed of the ``random`` draws.
        overrides: extra arguments appended to every point (on the command line: everything after ``--``,
            e.g. ``zooter sweep beta.yaml -- --data.synth.num_queries=800``).
    """

    workers: int = 1
    dry_run: bool = False
    out: str | None = None
    count: int | None = None
    seed: int = 0
    overrides: list[str] = field(default_factory=list)


def run_sweep(path: str | Path, runner: SweepRunner) -> Path | None:
    sweep = Sweep.load(path)
    points = sweep.points(runner.seed, runner.count)
    out = Path(runner.out or Path("sweeps") / sweep.name)
    jobs = [(point_id(i, p), p) for i, p in enumerate(points)]
    if runner.dry_run:
        for pid, point in jobs:
            state = "done" if _done(out / pid) else "to run"
            print(f"{pid} [{state}] zooter fit {' '.join([*sweep.base_args, *point_args(point), *runner.overrides])}")
        print(estimate(out, [pid for pid, _ in jobs], runner.workers))
        return None
    with ThreadPoolExecutor(max_workers=max(runner.workers, 1)) as pool:
        failures = [e for e in pool.map(lambda job: _run_point(sweep, out, runner, *job), jobs) if e]
    result = aggregate(sweep, out, jobs)
    if failures:
        raise SystemExit("zooter sweep: failed points:\n" + "\n".join(failures))
    return result


def _done(directory: Path) -> bool:
    return (directory / "test" / "test_metrics.json").is_file()


def estimate(out: Path, pids: list[str], workers: int = 1) -> str:
    """The dry run's last line: the number of points and the time those still to run should take.

    Seconds a point: the median over this sweep's finished points that ran start to end in one go (their
    ``timing.json``), else :data:`RECORDED_SECONDS_PER_POINT`. Points to run are shared among ``workers``.
    """
    done = {pid for pid in pids if _done(out / pid)}
    todo = [pid for pid in pids if pid not in done]
    measured = []
    for pid in done:
        timing = out / pid / "timing.json"
        if timing.is_file():
            record = json.loads(timing.read_text())
            if not record.get("resumed"):
                measured.append(float(record["seconds"]))
    if measured:
        per_point = float(np.median(measured))
        basis = f"the median of {len(measured)} finished point(s) of this sweep in {out}"
    else:
        per_point, basis = RECORDED_SECONDS_PER_POINT, f"no point of this sweep has finished yet; {RECORDED_BASIS}"
    parallel = max(1, min(workers, len(todo)))
    seconds = len(todo) * per_point / parallel
    return (
        f"zooter sweep: {len(pids)} points, {len(done)} done, {len(todo)} to run; estimated time "
        f"{_duration(seconds)} with {parallel} worker(s) at {per_point:.0f} s a point ({basis})"
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _run_point(sweep: Sweep, out: Path, runner: SweepRunner, pid: str, point: dict[str, Any]) -> str | None:
    directory = out / pid
    if _done(directory):
        print(f"zooter sweep: {pid} already done", flush=True)
        return None
    args = [*sweep.base_args, *point_args(point), *runner.overrides,
            "--trainer.logger.init_args.save_dir", str(out), "--trainer.logger.init_args.name", pid]  # fmt: skip
    command_file = directory / "command.json"
    resume = resume_args(directory / "fit")
    if resume and command_file.is_file() and json.loads(command_file.read_text()) == args:
        print(f"zooter sweep: {pid} resumes its fit from {resume[1]}", flush=True)
        shutil.rmtree(directory / "test", ignore_errors=True)
    else:  # new, or broken before its first checkpoint, or run with other arguments: start over
        resume = []
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        write_text_atomic(directory / "point.json", json.dumps(point, indent=2) + "\n")
        write_text_atomic(command_file, json.dumps(args) + "\n")
    started = time.perf_counter()
    with (directory / "log.txt").open("a") as log:
        for stage, extra in (("fit", ["--trainer.logger.init_args.version", "fit", *resume]), ("test", None)):
            if stage == "test":
                checkpoints = sorted((directory / "fit" / "checkpoints").glob("best-*.ckpt"))
                if not checkpoints:
                    return f"{pid}: no best checkpoint in {directory / 'fit' / 'checkpoints'}"
                extra = ["--trainer.logger.init_args.version", "test", "--ckpt_path", str(checkpoints[-1])]
            print(f"zooter sweep: {pid} {stage} {' '.join(point_args(point))}", flush=True)
            command = [sys.executable, "-m", "zooter", stage, *args, *extra, "--trainer.enable_progress_bar=false"]
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
            if done.returncode != 0:
                return f"{pid}: `zooter {stage}` exited with {done.returncode}; see {directory / 'log.txt'}"
    timing = {"seconds": round(time.perf_counter() - started, 3), "resumed": bool(resume)}
    write_text_atomic(directory / "timing.json", json.dumps(timing) + "\n")
    return None


def aggregate(sweep: Sweep, out: Path, jobs: list[tuple[str, dict[str, Any]]]) -> Path:
    """Mean ± std over seeds of the test metrics per setting of the other parameters."""
    swept = [name for name in sweep.parameters if name != SEED_KEY and len(_values_of(jobs, name)) > 1]
    groups: dict[tuple, list[dict[str, float]]] = defaultdict(list)
    pids: dict[tuple, list[str]] = defaultdict(list)
    for pid, point in jobs:
        metrics_path = out / pid / "test" / "test_metrics.json"
        if metrics_path.is_file():
            groups[tuple(point.get(name) for name in swept)].append(json.loads(metrics_path.read_text()))
            pids[tuple(point.get(name) for name in swept)].append(pid)
    rows = []
    for key, runs in sorted(groups.items(), key=lambda item: [str(v) for v in item[0]]):
        row: dict[str, Any] = dict(zip(swept, key, strict=True))
        row["seeds"] = len(runs)
        chosen_by = [v for pid in pids[key] if (v := validation_score(out / pid, sweep.metric, sweep.goal)) is not None]
        if chosen_by:
            row["validation"] = {
                "mean": float(np.mean(chosen_by)),
                "std": float(np.std(chosen_by, ddof=1)) if len(chosen_by) > 1 else 0.0,
            }
        for metric in (*METRICS, "test/best_single_score", "test/oracle_score"):
            values = np.array([r[metric] for r in runs if metric in r], dtype=float)
            if len(values):
                row[metric] = {
                    "mean": float(values.mean()),
                    "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                }
        rows.append(row)
    if "data.train_judge" in swept:
        _add_reward_model_ranking(rows, out, jobs)
    scored = [i for i, row in enumerate(rows) if "validation" in row]
    sign = 1 if sweep.goal == "maximize" else -1
    chosen = max(scored, key=lambda i: sign * rows[i]["validation"]["mean"]) if scored else None
    result = {"sweep": sweep.name, "swept": swept, "points": len(jobs), "done": sum(len(r) for r in groups.values()),
              "metric": sweep.metric, "goal": sweep.goal, "chosen_row": chosen, "rows": rows}  # fmt: skip
    write_text_atomic(out / "aggregate.json", json.dumps(result, indent=2) + "\n")
    write_text_atomic(out / "aggregate.md", _markdown(result))
    if rows and swept:
        _plot(result, out / "aggregate.png")
    print(_markdown(result))
    print(f"zooter sweep: {result['done']}/{len(jobs)} points done; aggregate in {out / 'aggregate.md'}")
    return out


def validation_score(point_dir: Path, metric: str, goal: str) -> float | None:
    """The best value of ``metric`` over the point's fit epochs (its ``metrics.csv``): what the best
    checkpoint was chosen by; None when the fit logged no such column."""
    path = point_dir / "fit" / "metrics.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as handle:
        values = [float(row[metric]) for row in csv.DictReader(handle) if row.get(metric)]
    if not values:
        return None
    return max(values) if goal == "maximize" else min(values)


def _add_reward_model_ranking(rows: list[dict[str, Any]], out: Path, jobs: list[tuple[str, dict[str, Any]]]) -> None:
    """Beside each train judge's router: that judge's RMR score on the same test split, and the cost ratio."""
    from zooter.eval.cost import CostModel
    from zooter.eval.functional import decision_weights, expected_scores
    from zooter.routers import baseline_scores as baselines
    from zooter.table.splits import SplitSpec, load_splits

    done = [pid for pid, _ in jobs if (out / pid / "fit" / "config.yaml").is_file()]
    if not done:
        return
    data = yaml.safe_load((out / done[0] / "fit" / "config.yaml").read_text())["data"]
    test = load_splits(SplitSpec.from_mapping(data))["test"]
    evals = test.judge(data.get("eval_judge", "scores"))
    cost = CostModel()
    for row in rows:
        prefs = baselines.reward_model_ranking(test.judge(row["data.train_judge"]))
        row["rmr_score"] = float(expected_scores(decision_weights(prefs, evals), evals).mean())
        row["rmr_cost_over_routed"] = cost.reward_model_ranking(len(test.candidates)) / cost.routed()


def _values_of(jobs: list[tuple[str, dict[str, Any]]], name: str) -> list[Any]:
    return list(dict.fromkeys(json.dumps(point.get(name)) for _, point in jobs))


def _markdown(result: dict[str, Any]) -> str:
    metrics = [*METRICS, "test/best_single_score", "test/oracle_score"]
    chosen, metric = result.get("chosen_row"), result.get("metric", "val/routed_score")
    lines = [f"# Sweep `{result['sweep']}`: mean ± std over seeds ({result['done']}/{result['points']} points done)",
             "", "| " + " | ".join([*result["swept"], "seeds", f"{metric} (best epoch)", *metrics]) + " |",
             "|" + "---|" * len(result["swept"]) + "---:|" * (2 + len(metrics))]  # fmt: skip
    for index, row in enumerate(result["rows"]):
        cells = [str(row[name]) for name in result["swept"]] + [str(row["seeds"])]
        stat = row.get("validation")
        cells.append(
            "n/a" if stat is None else f"{stat['mean']:.4f} ± {stat['std']:.4f}" + (" ★" if index == chosen else "")
        )
        cells += [f"{row[m]['mean']:.4f} ± {row[m]['std']:.4f}" if m in row else "n/a" for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    if chosen is not None:
        setting = ", ".join(f"{name}={result['rows'][chosen][name]}" for name in result["swept"]) or "the only setting"
        lines += ["", f"★ chosen on validation ({result.get('goal', 'maximize')} the mean of {metric} over seeds, "
                  f"each seed's best epoch, the one its best checkpoint was kept for): {setting}. The test columns "
                  "report every setting, the unfavourable ones too."]  # fmt: skip
    if any("rmr_score" in row for row in result["rows"]):
        lines += [
            "",
            "Reward-model comparison: the router trained on each judge against reward-model ranking (RMR)",
            "with that judge (all N candidates generate, the judge picks), scored by the eval judge:",
            "",
            "| train judge | router score | RMR score | RMR cost / routed cost |",
            "|---|---:|---:|---:|",
        ]
        for row in result["rows"]:
            router = row.get("test/routed_score", {}).get("mean", float("nan"))
            lines.append(f"| {row['data.train_judge']} | {router:.4f} | {row['rmr_score']:.4f} | "
                         f"{row['rmr_cost_over_routed']:.1f}× |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_name, *others = result["swept"]
    series: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in result["rows"]:
        series[tuple(row[name] for name in others)].append(row)
    panels = [("test/routed_score", "routed score (eval judge)"), ("test/gap_recovered", "gap recovered"),
              ("test/kl", "KL(s* || router)")]  # fmt: skip
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    for ax, (metric, label) in zip(axes, panels, strict=True):
        for key, rows in series.items():
            xs = [str(row[x_name]) for row in rows]
            means = [row[metric]["mean"] for row in rows if metric in row]
            stds = [row[metric]["std"] for row in rows if metric in row]
            name = ", ".join(f"{n}={v}" for n, v in zip(others, key, strict=True)) or None
            ax.errorbar(xs[: len(means)], means, yerr=stds, marker="o", capsize=3, label=name)
        if metric == "test/routed_score":
            for ref, style in (("test/best_single_score", ":"), ("test/oracle_score", "--")):
                values = [row[ref]["mean"] for row in result["rows"] if ref in row]
                if values:
                    ax.axhline(float(np.mean(values)), color="k", linestyle=style, label=ref.split("/")[1])
        ax.set_xlabel(x_name)
        ax.set_title(label)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(f"sweep {result['sweep']}: mean ± std over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> None:
    """``zooter sweep FILE [--workers N] [--dry_run] [-- EXTRA FIT ARGS...]``"""
    from zooter.cli_args import PlainParser

    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    parser = PlainParser(prog="zooter sweep", description=__doc__)
    parser.add_argument("file", help="a W&B sweep YAML (experiments/sweeps/*.yaml)")
    parser.add_class_arguments(SweepRunner, nested_key=None)
    args = parser.parse_args(own)
    options = args.as_dict()
    options["overrides"] = [*options.get("overrides", []), *extra]
    path = options.pop("file")
    options.pop("config", None)
    try:
        run_sweep(path, SweepRunner(**options))
    except ValueError as err:
        sys.exit(f"zooter sweep: {err}")
